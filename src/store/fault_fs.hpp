#pragma once
// Power-cut testing support. kill -9 cannot show a missing sync, because the page cache survives it;
// a power cut does not. SyncTrackingFs sits between RocksDB and the disk (only when
// Options::track_syncs asks for it) and records, for every file the store writes, how many bytes a
// Sync/Fsync made durable, and which creates, renames and deletes a directory fsync made durable.
// After every change it rewrites a manifest of that state to a side file (temporary file and
// rename, no fsync: the page cache survives kill -9, which is what the tests use), always before
// the call returns to RocksDB, so the manifest never claims more than was acknowledged.
// simulate_power_cut() then turns a directory back into what a power cut at that moment would
// leave: each file truncated to its synced length, unsynced creates dropped and unsynced renames
// undone.
//
// Model and its limits (docs/store.md): data is durable only up to the last Sync/Fsync of its file
// (RangeSync and Close are not syncs); a directory entry only after an fsync of its directory. An
// unsynced delete is recorded but not undone (the file stays deleted). Directories themselves
// (creating the store's directory) are not tracked. Files the wrapper never saw (left by an earlier
// run) are taken as durable.
//
// Thread safety: RocksDB calls it from any of its threads; one mutex guards the state.
#include <rocksdb/file_system.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace tern::store {

class SyncTrackingFs : public rocksdb::FileSystemWrapper {
 public:
  SyncTrackingFs(const std::shared_ptr<rocksdb::FileSystem>& target, std::string manifest_path);
  ~SyncTrackingFs() override;

  static const char* kClassName() { return "TernSyncTrackingFs"; }
  const char* Name() const override { return kClassName(); }

  // The power cut, as far as the process is concerned: from now on nothing reaches the disk (every
  // write, sync, create, rename and delete fails with an I/O error) and the manifest stays as it is.
  void cut();
  // While set, appends, syncs and creates fail with NoSpace (a full disk) without touching the disk.
  void set_no_space(bool on) { no_space_.store(on); }
  // Empty unless writing the manifest failed at some point (the test is then void).
  std::string manifest_error() const;

  // Per-inode state, shared by every name the file has had (renames keep it).
  struct Node {
    std::uint64_t written = 0;  // bytes appended (in the page cache)
    std::uint64_t synced = 0;   // bytes a Sync/Fsync made durable
  };

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& opts,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r, rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& opts,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& f, const std::string& old, const rocksdb::FileOptions& opts,
                                      std::unique_ptr<rocksdb::FSWritableFile>* r,
                                      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewRandomRWFile(const std::string& f, const rocksdb::FileOptions& opts,
                                    std::unique_ptr<rocksdb::FSRandomRWFile>* r, rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewDirectory(const std::string& name, const rocksdb::IOOptions& io_opts,
                                 std::unique_ptr<rocksdb::FSDirectory>* r, rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteFile(const std::string& f, const rocksdb::IOOptions& opts,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus Truncate(const std::string& f, size_t size, const rocksdb::IOOptions& opts,
                             rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus RenameFile(const std::string& src, const std::string& dst, const rocksdb::IOOptions& opts,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus LinkFile(const std::string& src, const std::string& dst, const rocksdb::IOOptions& opts,
                             rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus CreateDir(const std::string& d, const rocksdb::IOOptions& opts,
                              rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus CreateDirIfMissing(const std::string& d, const rocksdb::IOOptions& opts,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteDir(const std::string& d, const rocksdb::IOOptions& opts,
                              rocksdb::IODebugContext* dbg) override;
  // No free space while set_no_space is on, so RocksDB's own recovery waits for space like on a
  // full disk.
  rocksdb::IOStatus GetFreeSpace(const std::string& path, const rocksdb::IOOptions& opts, uint64_t* diskfree,
                                 rocksdb::IODebugContext* dbg) override;

  // Called by the file wrappers (any RocksDB thread).
  rocksdb::IOStatus check_write() const;  // power cut or full disk
  void appended(Node& n, std::uint64_t end, bool absolute);
  std::uint64_t written(const Node& n);
  rocksdb::IOStatus synced(Node& n, std::uint64_t upto);
  void truncated(Node& n, std::uint64_t size);
  rocksdb::IOStatus dir_synced(const std::string& dir);

 private:
  struct Entry {
    std::shared_ptr<Node> node;
    bool durable = false;  // the directory entry survives a power cut
  };
  struct Rename {
    std::string src, dst;
    bool src_durable = false;
    std::string backup;  // copy of the durable file `dst` replaced ("" = none)
  };
  std::shared_ptr<Node> track_new(const std::string& path, bool existed, std::uint64_t size);
  std::shared_ptr<Node> node_of(const std::string& path);  // tracked, or taken as durable
  void save_manifest();  // with mu_ held

  const std::string manifest_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> files_;  // by normalised path
  std::vector<Rename> renames_;        // not yet made durable, in order
  std::vector<std::string> deletes_;   // not yet made durable (recorded only)
  std::uint64_t backups_ = 0;
  std::string manifest_error_;
  std::atomic<bool> cut_{false};
  std::atomic<bool> no_space_{false};
};

// Makes `dir` what a power cut would have left, from the manifest SyncTrackingFs wrote: files
// truncated to their synced length, unsynced creates removed, unsynced renames undone. Only paths
// under `dir` are touched. False with `error` when the manifest cannot be read or applied.
bool simulate_power_cut(const std::string& dir, const std::string& manifest, std::string& error);

}  // namespace tern::store
