#include "store/fault_fs.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>

namespace tern::store {

// Manifest (text, one record a line, fields separated by tabs; paths last and tab-free):
//   tern-sync-manifest 1
//   file    DURABLE SYNCED PATH          a file's durable length; DURABLE 0 = its entry is not
//   rename  SRC_DURABLE SRC DST BACKUP   an unsynced rename; BACKUP holds the durable file DST replaced
//   delete  PATH                         an unsynced delete (recorded, not undone)
namespace {

namespace fs = std::filesystem;

std::string norm(const std::string& p) { return fs::path(p).lexically_normal().string(); }
std::string parent_of(const std::string& p) { return fs::path(p).parent_path().string(); }

rocksdb::IOStatus cut_error() { return rocksdb::IOStatus::IOError("power cut (SyncTrackingFs)"); }

class TrackedFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  TrackedFile(std::unique_ptr<rocksdb::FSWritableFile> t, SyncTrackingFs& fs, std::shared_ptr<SyncTrackingFs::Node> n)
      : FSWritableFileOwnerWrapper(std::move(t)), fs_(fs), node_(std::move(n)) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    if (auto s = fs_.check_write(); !s.ok()) return s;
    auto s = target()->Append(data, o, d);
    if (s.ok()) fs_.appended(*node_, data.size(), false);
    return s;
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           const rocksdb::DataVerificationInfo& v, rocksdb::IODebugContext* d) override {
    if (auto s = fs_.check_write(); !s.ok()) return s;
    auto s = target()->Append(data, o, v, d);
    if (s.ok()) fs_.appended(*node_, data.size(), false);
    return s;
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t off, const rocksdb::IOOptions& o,
                                     rocksdb::IODebugContext* d) override {
    if (auto s = fs_.check_write(); !s.ok()) return s;
    auto s = target()->PositionedAppend(data, off, o, d);
    if (s.ok()) fs_.appended(*node_, off + data.size(), true);
    return s;
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t off, const rocksdb::IOOptions& o,
                                     const rocksdb::DataVerificationInfo& v, rocksdb::IODebugContext* d) override {
    if (auto s = fs_.check_write(); !s.ok()) return s;
    auto s = target()->PositionedAppend(data, off, o, v, d);
    if (s.ok()) fs_.appended(*node_, off + data.size(), true);
    return s;
  }
  rocksdb::IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    if (auto s = fs_.check_write(); !s.ok()) return s;
    auto s = target()->Truncate(size, o, d);
    if (s.ok()) fs_.truncated(*node_, size);
    return s;
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    if (auto s = fs_.check_write(); !s.ok()) return s;
    // Only what was appended before the sync started is known to be covered by it.
    const std::uint64_t upto = fs_.written(*node_);
    auto s = target()->Sync(o, d);
    return s.ok() ? fs_.synced(*node_, upto) : s;
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    if (auto s = fs_.check_write(); !s.ok()) return s;
    const std::uint64_t upto = fs_.written(*node_);
    auto s = target()->Fsync(o, d);
    return s.ok() ? fs_.synced(*node_, upto) : s;
  }
  rocksdb::IOStatus RangeSync(uint64_t off, uint64_t n, const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    // sync_file_range makes nothing durable (no metadata, no disk cache flush): not a sync here.
    if (auto s = fs_.check_write(); !s.ok()) return s;
    return target()->RangeSync(off, n, o, d);
  }
  rocksdb::IOStatus Allocate(uint64_t off, uint64_t len, const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    if (auto s = fs_.check_write(); !s.ok()) return s;
    return target()->Allocate(off, len, o, d);
  }

 private:
  SyncTrackingFs& fs_;
  std::shared_ptr<SyncTrackingFs::Node> node_;
};

class TrackedDir : public rocksdb::FSDirectoryWrapper {
 public:
  TrackedDir(std::unique_ptr<rocksdb::FSDirectory> t, SyncTrackingFs& fs, std::string name)
      : FSDirectoryWrapper(std::move(t)), fs_(fs), name_(std::move(name)) {}
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    if (auto s = fs_.check_write(); !s.ok()) return s;
    auto s = FSDirectoryWrapper::Fsync(o, d);
    return s.ok() ? fs_.dir_synced(name_) : s;
  }
  rocksdb::IOStatus FsyncWithDirOptions(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d,
                                        const rocksdb::DirFsyncOptions& opts) override {
    if (auto s = fs_.check_write(); !s.ok()) return s;
    auto s = FSDirectoryWrapper::FsyncWithDirOptions(o, d, opts);
    return s.ok() ? fs_.dir_synced(name_) : s;
  }

 private:
  SyncTrackingFs& fs_;
  std::string name_;
};

bool copy_prefix(const std::string& from, const std::string& to, std::uint64_t n) {
  std::ifstream in(from, std::ios::binary);
  std::ofstream out(to, std::ios::binary | std::ios::trunc);
  if (!in || !out) return false;
  std::string buf(64 * 1024, '\0');
  while (n > 0 && in) {
    in.read(buf.data(), static_cast<std::streamsize>(std::min<std::uint64_t>(n, buf.size())));
    auto got = static_cast<std::uint64_t>(in.gcount());
    if (got == 0) break;
    out.write(buf.data(), static_cast<std::streamsize>(got));
    n -= got;
  }
  return static_cast<bool>(out);
}

}  // namespace

SyncTrackingFs::SyncTrackingFs(const std::shared_ptr<rocksdb::FileSystem>& target, std::string manifest_path)
    : FileSystemWrapper(target), manifest_(std::move(manifest_path)) {
  std::lock_guard lock(mu_);
  save_manifest();
}

SyncTrackingFs::~SyncTrackingFs() = default;

void SyncTrackingFs::cut() {
  std::lock_guard lock(mu_);
  cut_.store(true);
}

std::string SyncTrackingFs::manifest_error() const {
  std::lock_guard lock(mu_);
  return manifest_error_;
}

rocksdb::IOStatus SyncTrackingFs::check_write() const {
  if (cut_.load()) return cut_error();
  if (no_space_.load()) return rocksdb::IOStatus::NoSpace("no space left on device (SyncTrackingFs)");
  return rocksdb::IOStatus::OK();
}

void SyncTrackingFs::appended(Node& n, std::uint64_t end, bool absolute) {
  std::lock_guard lock(mu_);
  n.written = absolute ? std::max(n.written, end) : n.written + end;
}

std::uint64_t SyncTrackingFs::written(const Node& n) {
  std::lock_guard lock(mu_);
  return n.written;
}

rocksdb::IOStatus SyncTrackingFs::synced(Node& n, std::uint64_t upto) {
  std::lock_guard lock(mu_);
  // A sync that returns after the cut did not happen as far as anyone may know.
  if (cut_.load()) return cut_error();
  n.synced = std::max(n.synced, std::min(upto, n.written));
  save_manifest();
  return rocksdb::IOStatus::OK();
}

void SyncTrackingFs::truncated(Node& n, std::uint64_t size) {
  std::lock_guard lock(mu_);
  n.written = size;
  n.synced = std::min(n.synced, size);
  save_manifest();
}

rocksdb::IOStatus SyncTrackingFs::dir_synced(const std::string& dir) {
  std::lock_guard lock(mu_);
  if (cut_.load()) return cut_error();
  const std::string d = norm(dir);
  for (auto& [path, e] : files_) {
    if (parent_of(path) == d) e.durable = true;
  }
  std::vector<Rename> keep;
  for (auto& r : renames_) {
    if (parent_of(r.dst) == d) {
      if (!r.backup.empty()) {
        std::error_code ec;
        fs::remove(r.backup, ec);
      }
    } else {
      keep.push_back(std::move(r));
    }
  }
  renames_ = std::move(keep);
  std::erase_if(deletes_, [&](const std::string& p) { return parent_of(p) == d; });
  save_manifest();
  return rocksdb::IOStatus::OK();
}

std::shared_ptr<SyncTrackingFs::Node> SyncTrackingFs::track_new(const std::string& path, bool existed,
                                                                std::uint64_t size) {
  std::lock_guard lock(mu_);
  auto node = std::make_shared<Node>();
  node->written = size;
  node->synced = size;
  auto it = files_.find(path);
  // An entry that already existed stays (its durability is that of the name); one the wrapper never
  // saw was left by an earlier run and is taken as durable.
  const bool durable = it != files_.end() ? it->second.durable : existed;
  files_[path] = Entry{node, durable};
  save_manifest();
  return node;
}

std::shared_ptr<SyncTrackingFs::Node> SyncTrackingFs::node_of(const std::string& path) {
  auto it = files_.find(path);
  if (it != files_.end()) return it->second.node;
  std::uint64_t size = 0;
  rocksdb::IOOptions io;
  target()->GetFileSize(path, io, &size, nullptr);
  auto node = std::make_shared<Node>();
  node->written = node->synced = size;
  files_[path] = Entry{node, true};
  return node;
}

rocksdb::IOStatus SyncTrackingFs::NewWritableFile(const std::string& f, const rocksdb::FileOptions& opts,
                                                  std::unique_ptr<rocksdb::FSWritableFile>* r,
                                                  rocksdb::IODebugContext* dbg) {
  if (auto s = check_write(); !s.ok()) return s;
  const std::string p = norm(f);
  const bool existed = target()->FileExists(f, opts.io_options, dbg).ok();
  // Recorded before the file exists, so a kill between the two never leaves an unknown new file.
  auto node = track_new(p, existed, 0);
  std::unique_ptr<rocksdb::FSWritableFile> file;
  auto s = target()->NewWritableFile(f, opts, &file, dbg);
  if (!s.ok()) {
    if (!existed) {
      std::lock_guard lock(mu_);
      files_.erase(p);
      save_manifest();
    }
    return s;
  }
  *r = std::make_unique<TrackedFile>(std::move(file), *this, std::move(node));
  return s;
}

rocksdb::IOStatus SyncTrackingFs::ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& opts,
                                                     std::unique_ptr<rocksdb::FSWritableFile>* r,
                                                     rocksdb::IODebugContext* dbg) {
  if (auto s = check_write(); !s.ok()) return s;
  const std::string p = norm(f);
  std::uint64_t size = 0;
  const bool existed = target()->GetFileSize(f, opts.io_options, &size, dbg).ok();
  std::shared_ptr<Node> node;
  {
    std::lock_guard lock(mu_);
    if (files_.count(p) != 0) node = files_[p].node;
  }
  if (!node) node = track_new(p, existed, size);
  std::unique_ptr<rocksdb::FSWritableFile> file;
  auto s = target()->ReopenWritableFile(f, opts, &file, dbg);
  if (!s.ok()) return s;
  *r = std::make_unique<TrackedFile>(std::move(file), *this, std::move(node));
  return s;
}

rocksdb::IOStatus SyncTrackingFs::ReuseWritableFile(const std::string&, const std::string&,
                                                    const rocksdb::FileOptions&,
                                                    std::unique_ptr<rocksdb::FSWritableFile>*,
                                                    rocksdb::IODebugContext*) {
  // Only used when recycling WAL files, which the store never enables.
  return rocksdb::IOStatus::NotSupported("SyncTrackingFs: ReuseWritableFile");
}

rocksdb::IOStatus SyncTrackingFs::NewRandomRWFile(const std::string&, const rocksdb::FileOptions&,
                                                  std::unique_ptr<rocksdb::FSRandomRWFile>*,
                                                  rocksdb::IODebugContext*) {
  // Writes that could not be tracked: refuse them rather than miss them (the store does not use it).
  return rocksdb::IOStatus::NotSupported("SyncTrackingFs: NewRandomRWFile");
}

rocksdb::IOStatus SyncTrackingFs::NewDirectory(const std::string& name, const rocksdb::IOOptions& io_opts,
                                               std::unique_ptr<rocksdb::FSDirectory>* r,
                                               rocksdb::IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSDirectory> dir;
  auto s = target()->NewDirectory(name, io_opts, &dir, dbg);
  if (!s.ok()) return s;
  *r = std::make_unique<TrackedDir>(std::move(dir), *this, norm(name));
  return s;
}

rocksdb::IOStatus SyncTrackingFs::DeleteFile(const std::string& f, const rocksdb::IOOptions& opts,
                                             rocksdb::IODebugContext* dbg) {
  if (cut_.load()) return cut_error();
  auto s = target()->DeleteFile(f, opts, dbg);
  if (s.ok()) {
    std::lock_guard lock(mu_);
    const std::string p = norm(f);
    files_.erase(p);
    deletes_.push_back(p);
    save_manifest();
  }
  return s;
}

rocksdb::IOStatus SyncTrackingFs::Truncate(const std::string& f, size_t size, const rocksdb::IOOptions& opts,
                                           rocksdb::IODebugContext* dbg) {
  if (auto s = check_write(); !s.ok()) return s;
  auto s = target()->Truncate(f, size, opts, dbg);
  if (s.ok()) {
    std::lock_guard lock(mu_);
    auto node = node_of(norm(f));
    node->written = size;
    node->synced = std::min<std::uint64_t>(node->synced, size);
    save_manifest();
  }
  return s;
}

rocksdb::IOStatus SyncTrackingFs::RenameFile(const std::string& src, const std::string& dst,
                                             const rocksdb::IOOptions& opts, rocksdb::IODebugContext* dbg) {
  if (cut_.load()) return cut_error();
  const std::string s_path = norm(src), d_path = norm(dst);
  Rename rec;
  std::map<std::string, Entry> before;
  {
    std::lock_guard lock(mu_);
    before = files_;
    auto node = node_of(s_path);
    rec.src = s_path;
    rec.dst = d_path;
    rec.src_durable = files_[s_path].durable;
    auto old = files_.find(d_path);
    const bool dst_exists = old != files_.end() || target()->FileExists(d_path, opts, dbg).ok();
    if (dst_exists) {
      auto old_node = node_of(d_path);
      if (files_[d_path].durable) {
        rec.backup = manifest_ + ".bak." + std::to_string(++backups_);
        if (!copy_prefix(d_path, rec.backup, old_node->synced)) manifest_error_ = "cannot back up " + d_path;
      }
    }
    files_.erase(s_path);
    files_[d_path] = Entry{node, false};
    renames_.push_back(rec);
    save_manifest();
  }
  auto s = target()->RenameFile(src, dst, opts, dbg);
  if (!s.ok()) {
    std::lock_guard lock(mu_);
    files_ = std::move(before);
    renames_.pop_back();
    if (!rec.backup.empty()) {
      std::error_code ec;
      fs::remove(rec.backup, ec);
    }
    save_manifest();
  }
  return s;
}

rocksdb::IOStatus SyncTrackingFs::LinkFile(const std::string& src, const std::string& dst,
                                           const rocksdb::IOOptions& opts, rocksdb::IODebugContext* dbg) {
  if (auto s = check_write(); !s.ok()) return s;
  auto s = target()->LinkFile(src, dst, opts, dbg);
  if (s.ok()) {
    std::lock_guard lock(mu_);
    auto node = node_of(norm(src));
    files_[norm(dst)] = Entry{node, false};
    save_manifest();
  }
  return s;
}

rocksdb::IOStatus SyncTrackingFs::CreateDir(const std::string& d, const rocksdb::IOOptions& opts,
                                            rocksdb::IODebugContext* dbg) {
  if (cut_.load()) return cut_error();
  return target()->CreateDir(d, opts, dbg);
}

rocksdb::IOStatus SyncTrackingFs::CreateDirIfMissing(const std::string& d, const rocksdb::IOOptions& opts,
                                                     rocksdb::IODebugContext* dbg) {
  if (cut_.load()) return cut_error();
  return target()->CreateDirIfMissing(d, opts, dbg);
}

rocksdb::IOStatus SyncTrackingFs::DeleteDir(const std::string& d, const rocksdb::IOOptions& opts,
                                            rocksdb::IODebugContext* dbg) {
  if (cut_.load()) return cut_error();
  return target()->DeleteDir(d, opts, dbg);
}

rocksdb::IOStatus SyncTrackingFs::GetFreeSpace(const std::string& path, const rocksdb::IOOptions& opts,
                                               uint64_t* diskfree, rocksdb::IODebugContext* dbg) {
  if (no_space_.load()) {
    *diskfree = 0;
    return rocksdb::IOStatus::OK();
  }
  return target()->GetFreeSpace(path, opts, diskfree, dbg);
}

void SyncTrackingFs::save_manifest() {
  std::ostringstream m;
  m << "tern-sync-manifest\t1\n";
  for (const auto& [path, e] : files_) {
    m << "file\t" << (e.durable ? 1 : 0) << '\t' << e.node->synced << '\t' << path << '\n';
  }
  for (const auto& r : renames_) {
    m << "rename\t" << (r.src_durable ? 1 : 0) << '\t' << r.src << '\t' << r.dst << '\t' << r.backup << '\n';
  }
  for (const auto& d : deletes_) m << "delete\t" << d << '\n';
  const std::string tmp = manifest_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << m.str();
    out.flush();
    if (!out) {
      manifest_error_ = "cannot write " + tmp;
      return;
    }
  }
  std::error_code ec;
  fs::rename(tmp, manifest_, ec);
  if (ec) manifest_error_ = "cannot rename " + tmp + ": " + ec.message();
}

namespace {

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    std::size_t t = line.find('\t', start);
    out.push_back(line.substr(start, t == std::string::npos ? std::string::npos : t - start));
    if (t == std::string::npos) return out;
    start = t + 1;
  }
}

}  // namespace

bool simulate_power_cut(const std::string& dir, const std::string& manifest, std::string& error) {
  struct File {
    bool durable;
    std::uint64_t synced;
    std::string path;
  };
  struct Ren {
    bool src_durable;
    std::string src, dst, backup;
  };
  std::ifstream in(manifest);
  if (!in) {
    error = "cannot read " + manifest;
    return false;
  }
  const std::string root = norm(dir) + "/";
  auto under = [&](const std::string& p) { return p.compare(0, root.size(), root) == 0; };
  std::vector<File> files;
  std::vector<Ren> renames;
  std::string line;
  bool header = false;
  while (std::getline(in, line)) {
    auto f = split_tabs(line);
    if (!header) {
      if (f.size() != 2 || f[0] != "tern-sync-manifest" || f[1] != "1") {
        error = manifest + " is not a sync manifest";
        return false;
      }
      header = true;
      continue;
    }
    if (f[0] == "file" && f.size() == 4) {
      files.push_back({f[1] == "1", std::stoull(f[2]), f[3]});
    } else if (f[0] == "rename" && f.size() == 5) {
      renames.push_back({f[1] == "1", f[2], f[3], f[4]});
    } else if (f[0] == "delete" && f.size() == 2) {
      // Recorded only (see the header).
    } else {
      error = manifest + ": bad line: " + line;
      return false;
    }
  }
  if (!header) {
    error = manifest + " is empty";
    return false;
  }
  std::error_code ec;
  // 1. Data: every file back to its synced length, under whatever name it has now.
  for (const auto& f : files) {
    if (!under(f.path) || !fs::exists(f.path, ec)) continue;
    if (fs::file_size(f.path, ec) > f.synced) fs::resize_file(f.path, f.synced, ec);
    if (ec) {
      error = "cannot truncate " + f.path + ": " + ec.message();
      return false;
    }
  }
  // 2. Entries never made durable, except rename targets, which step 3 handles.
  std::set<std::string> targets;
  for (const auto& r : renames) targets.insert(r.dst);
  for (const auto& f : files) {
    if (!f.durable && under(f.path) && targets.count(f.path) == 0) fs::remove(f.path, ec);
  }
  // 3. Unsynced renames, newest first: the file goes back to its old name (or away, if that name was
  // not durable either) and a durable file the rename replaced comes back.
  for (auto it = renames.rbegin(); it != renames.rend(); ++it) {
    if (!under(it->dst) || !under(it->src)) continue;
    if (!fs::exists(it->src, ec) && fs::exists(it->dst, ec)) {
      if (it->src_durable) {
        fs::rename(it->dst, it->src, ec);
      } else {
        fs::remove(it->dst, ec);
      }
      if (ec) {
        error = "cannot undo the rename of " + it->src + ": " + ec.message();
        return false;
      }
    }
    if (!it->backup.empty()) {
      fs::copy_file(it->backup, it->dst, fs::copy_options::overwrite_existing, ec);
      if (ec) {
        error = "cannot restore " + it->dst + ": " + ec.message();
        return false;
      }
      fs::remove(it->backup, ec);
    }
  }
  return true;
}

}  // namespace tern::store
