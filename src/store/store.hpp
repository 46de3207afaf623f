#pragma once
// The embedded store on RocksDB (docs/store.md): persistent sessions, their queues and in-flight
// state, inbound QoS 2 ids and retained messages, written with group commit.
//
// Ownership and threads: one Store, owned by whoever opened it (the broker). submit() may be called
// from any thread; a store thread of its own takes everything submitted, writes it as one RocksDB
// write, syncs once and then runs the completions, in submission order, on the store thread. load()
// is for recovery, before the first submit(). close() (or the destructor) drains what was
// submitted, syncs and joins the store thread.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "store/records.hpp"

namespace rocksdb {
class DB;
class Env;
}  // namespace rocksdb

namespace tern::store {

class SyncTrackingFs;

struct Options {
  enum class Mode {
    kSync,     // every write is synced before its completion runs: acknowledged means durable
    kBatched,  // completions run after the write; the WAL is synced every batch_window
  };
  std::string path;  // the store's directory
  Mode mode = Mode::kSync;
  std::chrono::milliseconds batch_window{10};
  // Store size bound, measured with RocksDB's size properties (SST files plus memtables); 0 = none.
  // At the bound, batches with puts complete with Status::kFull (see Batch::allow_at_bound).
  std::uint64_t max_bytes = 0;
  // Power-cut tests: route the store's files through SyncTrackingFs, which keeps a manifest of what
  // is durable in `sync_manifest` (default: path + ".syncs"). Never in production.
  bool track_syncs = false;
  std::string sync_manifest;
};

enum class Status : std::uint8_t {
  kOk = 0,
  kFull,     // disk full or the store at max_bytes: nothing of the batch was written
  kIoError,  // any other write or sync failure: nothing of the batch may be taken as durable
  kClosed,   // submitted after close()
};
const char* status_name(Status s);

// Writes to apply together: all or nothing. Records are encoded when they are added, on the caller's
// thread. Movable; not thread-safe.
class Batch {
 public:
  // Records that are put once and erased once (messages, inbound ids, and queue entries whose state
  // never changes) are erased with RocksDB's SingleDelete: when the put is still in the memtable,
  // the flush drops both, so short-lived records never reach a table file. Erasing a record put
  // more than once that way is undefined; pass written_once = false for such queue entries.
  void put(const MessageRecord& r);
  void erase_message(std::uint64_t id);
  void put(const SessionRecord& r);
  void erase_session(std::string_view client_id);
  void put(const QueueEntry& r);
  void erase_queue_entry(std::string_view client_id, std::uint64_t seq, bool written_once = false);
  void put(const InboundQos2& r);
  void erase_inbound(std::string_view client_id, std::uint16_t packet_id);
  void put(const RetainedRecord& r);
  void erase_retained(std::string_view topic);
  // The session record, every queue entry and every inbound id of a session (its messages are the
  // caller's to erase when no other session refers to them).
  void erase_session_state(std::string_view client_id);

  // A batch that only records progress of work the store already accepted (an entry going from
  // queued to sent, say) may be written at max_bytes; batches that only erase always are.
  void allow_at_bound() { allow_at_bound_ = true; }

  bool empty() const { return ops_ == 0; }
  std::size_t size() const { return ops_; }  // records put or erased
  std::size_t bytes() const { return rep_.size(); }
  void clear();

 private:
  friend class Store;
  void add(char op, std::string_view key, std::string_view value);
  template <class Record>
  void put_record(const Record& r);
  std::string rep_;  // op (P put, D delete, R range delete), u32 key size, key, u32 value size, value
  std::string scratch_;
  std::size_t ops_ = 0;
  bool has_puts_ = false;
  bool allow_at_bound_ = false;
};

// Recovery: load() hands every record to these, kind after kind.
class Visitor {
 public:
  virtual ~Visitor() = default;
  virtual void message(MessageRecord&& m) = 0;
  virtual void session(SessionRecord&& s) = 0;
  virtual void queue_entry(QueueEntry&& e) = 0;  // per session, in sequence order
  virtual void inbound(InboundQos2&& i) = 0;
  virtual void retained(RetainedRecord&& r) = 0;
};

struct LoadCounts {
  std::uint64_t messages = 0;
  std::uint64_t sessions = 0;
  std::uint64_t queue_entries = 0;
  std::uint64_t inbound = 0;
  std::uint64_t retained = 0;
  std::uint64_t unreferenced_deleted = 0;  // messages no queue entry or inbound id referred to
  std::uint64_t orphans_deleted = 0;       // queue entries and inbound ids (see Store::load)
};

// Counters for metrics and the benchmark (monotonic since open).
struct Counters {
  std::uint64_t batches = 0;  // completed with kOk
  std::uint64_t records = 0;  // puts and erases written
  std::uint64_t writes = 0;   // RocksDB writes (one per group of batches)
  std::uint64_t syncs = 0;    // WAL syncs (kSync: one per write; kBatched: one per window with writes)
  std::uint64_t full = 0;     // batches completed with kFull
  std::uint64_t failed = 0;   // batches completed with kIoError
  double batches_per_sync() const { return syncs == 0 ? 0.0 : static_cast<double>(batches) / static_cast<double>(syncs); }
};

class Store {
 public:
  // Opens or creates the store at options.path. Null with `error` set when the directory holds
  // something else (not RocksDB, or RocksDB without Tern's format-version key), a newer format, or
  // damage RocksDB will not repair by dropping a torn WAL tail.
  static std::unique_ptr<Store> open(const Options& options, std::string& error);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Any thread. `done` runs once, on the store thread, after the batch is durable (kSync) or
  // written (kBatched), or failed; completions run in submission order. After close() it runs at
  // once on the caller's thread with kClosed. Keep it cheap: post the result elsewhere.
  void submit(Batch&& batch, std::function<void(Status)> done);
  // submit() and wait (start-up, tools, tests); never from a completion (it would wait for itself).
  Status write(Batch&& batch);

  // Recovery, before the first submit(): messages, sessions, queue entries (per session in sequence
  // order), inbound ids, retained messages. Orphans, queue entries and inbound ids whose session or
  // message is not stored, are not visited: the broker's writes can leave them after a crash (a
  // session's state erased while another worker's batch put an entry for it). They and the messages
  // nothing else refers to (reference counts are rebuilt here, never stored) are deleted in one
  // synced write. False with `error` at the first record that does not decode, a key of no known
  // kind, or a missing or newer format version.
  bool load(Visitor& visitor, std::string& error, LoadCounts* counts = nullptr);

  // Drains everything submitted, syncs, flushes the memtables and closes RocksDB. Idempotent.
  void close();

  Counters counters() const;
  // SST files plus memtables, from RocksDB's properties.
  std::uint64_t approximate_size() const;
  // Any thread, cheap: true while a batch with puts (not allow_at_bound) would complete with kFull,
  // i.e. while the store is at max_bytes or the disk is full. False again once a write succeeds or
  // the store thread finds space again (it retries by itself, with or without submissions).
  bool full() const { return full_now_.load(std::memory_order_relaxed); }
  const Options& options() const { return options_; }
  // The power-cut test hook when Options::track_syncs, else null.
  SyncTrackingFs* sync_tracker() const { return tracker_.get(); }

 private:
  struct Pending {
    Batch batch;
    std::function<void(Status)> done;
  };
  Store() = default;
  void run();
  void commit(std::vector<Pending>& group);
  Status write_group(std::vector<Pending>& group, std::vector<Status>& result);
  bool sync_wal();
  void refresh_size();
  bool resume_if_needed();
  void recovered();
  bool reopen();
  void idle_upkeep(std::chrono::steady_clock::time_point now);
  void publish_full();

  Options options_;
  std::shared_ptr<SyncTrackingFs> tracker_;
  std::unique_ptr<rocksdb::Env> env_;
  std::unique_ptr<rocksdb::DB> db_;

  std::mutex mu_;
  std::condition_variable wake_;
  std::vector<Pending> queue_;
  bool stopping_ = false;
  bool closed_ = false;
  std::thread thread_;

  // Store thread only.
  bool full_ = false;             // at max_bytes
  bool needs_resume_ = false;     // a failed write left RocksDB in its error state
  bool unsynced_ = false;         // kBatched: written since the last SyncWAL
  bool compact_when_full_ = false;  // erases were written while full: compaction may free space
  Status last_error_ = Status::kIoError;  // what batches get while RocksDB cannot resume
  std::chrono::steady_clock::time_point last_sync_{};
  std::chrono::steady_clock::time_point last_compaction_{};
  std::chrono::steady_clock::time_point next_recovery_{};
  std::chrono::steady_clock::time_point busy_since_{};  // RocksDB's recovery has said Busy since
  std::chrono::steady_clock::time_point last_size_poll_{};

  std::atomic<std::uint64_t> batches_{0}, records_{0}, writes_{0}, syncs_{0}, full_count_{0}, failed_{0};
  std::atomic<std::uint64_t> size_{0};
  std::atomic<bool> full_now_{false};  // full() for other threads; written by the store thread
};

// Operator tools (`tern store check|dump`).
struct CheckReport {
  bool ok = false;
  std::string problem;  // the first one, with its key
  std::uint32_t format_version = 0;
  std::uint64_t messages = 0, sessions = 0, queue_entries = 0, inbound = 0, retained = 0;
  std::uint64_t unreferenced = 0;  // messages the next start will delete (not a problem)
  // Queue entries and inbound ids whose session or message is not stored: the next start deletes
  // them (not a problem). Counted in queue_entries and inbound too, as unreferenced in messages.
  std::uint64_t orphans = 0;
  std::uint64_t bytes = 0;  // approximate size
};
// Opens the store read-only and decodes every record; checks the format version and the kinds of
// the keys, and counts unreferenced messages and orphans.
CheckReport check(const std::string& path);
// One line per record, in key order. False with `error` when the store cannot be opened.
bool dump(const std::string& path, std::ostream& out, std::string& error);

}  // namespace tern::store
