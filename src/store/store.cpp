#include "store/store.hpp"

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/listener.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/options.h>
#include <rocksdb/perf_level.h>
#include <rocksdb/write_batch.h>

#include <cassert>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <future>
#include <ostream>
#include <unordered_set>

#include "core/log.hpp"
#include "store/fault_fs.hpp"

namespace tern::store {

const char* status_name(Status s) {
  switch (s) {
    case Status::kOk: return "ok";
    case Status::kFull: return "full";
    case Status::kIoError: return "I/O error";
    case Status::kClosed: return "closed";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// Batch

void Batch::add(char op, std::string_view key, std::string_view value) {
  auto put32 = [this](std::size_t n) {
    std::uint32_t v = static_cast<std::uint32_t>(n);
    rep_.append(reinterpret_cast<const char*>(&v), sizeof v);
  };
  rep_.push_back(op);
  put32(key.size());
  rep_.append(key);
  put32(value.size());
  rep_.append(value);
  ++ops_;
  if (op == 'P') has_puts_ = true;
}

template <class Record>
void Batch::put_record(const Record& r) {
  assert(valid(r));
  scratch_.clear();
  encode_value(r, scratch_);
  add('P', key_of(r), scratch_);
}

void Batch::put(const MessageRecord& r) { put_record(r); }
void Batch::erase_message(std::uint64_t id) { add('S', message_key(id), {}); }

void Batch::put(const SessionRecord& r) { put_record(r); }
void Batch::erase_session(std::string_view client_id) { add('D', session_key(client_id), {}); }

void Batch::put(const QueueEntry& r) { put_record(r); }
void Batch::erase_queue_entry(std::string_view client_id, std::uint64_t seq, bool written_once) {
  add(written_once ? 'S' : 'D', queue_key(client_id, seq), {});
}

void Batch::put(const InboundQos2& r) { put_record(r); }
void Batch::erase_inbound(std::string_view client_id, std::uint16_t packet_id) {
  add('S', inbound_key(client_id, packet_id), {});
}

void Batch::put(const RetainedRecord& r) { put_record(r); }
void Batch::erase_retained(std::string_view topic) { add('D', retained_key(topic), {}); }

void Batch::erase_session_state(std::string_view client_id) {
  add('D', session_key(client_id), {});
  std::string q = queue_prefix(client_id);
  add('R', q, prefix_end(q));
  std::string i = inbound_prefix(client_id);
  add('R', i, prefix_end(i));
}

void Batch::clear() {
  rep_.clear();
  ops_ = 0;
  has_puts_ = false;
  allow_at_bound_ = false;
}

namespace {

// Without submissions, a store in RocksDB's error state retries recovery once a second (with
// submissions, every 200 ms: resume_if_needed).
constexpr std::chrono::milliseconds kIdleRecovery{800};

// Replays a Batch's operations into a RocksDB write batch.
void replay(const std::string& rep, rocksdb::WriteBatch& wb) {
  std::size_t at = 0;
  auto get32 = [&]() {
    std::uint32_t v;
    std::memcpy(&v, rep.data() + at, sizeof v);
    at += sizeof v;
    return static_cast<std::size_t>(v);
  };
  while (at < rep.size()) {
    const char op = rep[at++];
    std::size_t kn = get32();
    rocksdb::Slice key(rep.data() + at, kn);
    at += kn;
    std::size_t vn = get32();
    rocksdb::Slice value(rep.data() + at, vn);
    at += vn;
    switch (op) {
      case 'P': wb.Put(key, value); break;
      case 'D': wb.Delete(key); break;
      case 'S': wb.SingleDelete(key); break;
      case 'R': wb.DeleteRange(key, value); break;
      default: assert(false && "bad batch op");
    }
  }
}

// RocksDB counts into thread-local perf counters by default, a TLS lookup per key comparison. The
// store thread turns that off for itself; this turns it off on RocksDB's flush and compaction
// threads, where sorting a vector memtable is millions of comparisons (measured: 9% of the
// broker's CPU under durable load went to those lookups).
class QuietPerfCounters : public rocksdb::EventListener {
 public:
  void OnFlushBegin(rocksdb::DB*, const rocksdb::FlushJobInfo&) override { rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable); }
  void OnCompactionBegin(rocksdb::DB*, const rocksdb::CompactionJobInfo&) override {
    rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  }
};

constexpr std::size_t kWriteBufferSize = 8u << 20;

// RocksDB's own log goes to the broker's log (warnings and errors only), never to a LOG file in the
// store's directory: on a full disk, writing that file made Debian's librocksdb abort on one of its
// assertions, and its lines are of use to an operator only when something is wrong.
class ForwardingLogger : public rocksdb::Logger {
 public:
  ForwardingLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override { Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap); }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    char line[512];
    std::vsnprintf(line, sizeof line, format, ap);
    log::write(level >= rocksdb::InfoLogLevel::ERROR_LEVEL ? log::kError : log::kWarning, std::string("Store: ") + line);
  }
};

rocksdb::Options db_options() {
  rocksdb::Options o;
  o.listeners.push_back(std::make_shared<QuietPerfCounters>());
  o.create_if_missing = true;
  // A torn last WAL record after a crash is dropped; corruption anywhere else fails the open.
  o.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  o.paranoid_checks = true;
  o.recycle_log_file_num = 0;
  o.max_background_jobs = 2;
  o.info_log = std::make_shared<ForwardingLogger>();
  o.stats_dump_period_sec = 0;
  // The memtables' size property counts whole arena blocks (1 MiB by default): smaller blocks make
  // max_bytes exact to 64 KiB.
  o.arena_block_size = 64 * 1024;
  // The store thread is the only writer and nothing reads while the broker runs (load() reads once,
  // after the open has flushed the recovered WAL): an unsorted vector memtable, sorted when it is
  // flushed, takes a write for a fraction of a skip list's key comparisons. Measured in
  // docs/store.md: 2.5x the group-commit throughput.
  o.memtable_factory = std::make_shared<rocksdb::VectorRepFactory>();
  o.allow_concurrent_memtable_write = false;
  // Sorting a memtable of W records at flush costs W log W comparisons over keys scattered in its
  // arena: smaller memtables sort in cache. Most records are erased soon after they are written
  // (SingleDelete, above), so a flush mostly cancels pairs and writes little.
  o.write_buffer_size = kWriteBufferSize;
  return o;
}

std::string key_text(std::string_view k) {
  std::string out;
  for (unsigned char c : k) {
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

// One walk over the store, shared by load() and check(): decodes every record strictly and sorts
// out the references between them.
class Scanner {
 public:
  explicit Scanner(rocksdb::DB& db) : db_(db) {}

  // Format-version key: 1 ok, 0 missing, -1 error (set).
  int version(std::uint32_t& v) {
    std::string value;
    auto s = db_.Get(rocksdb::ReadOptions(), format_version_key(), &value);
    if (s.IsNotFound()) return 0;
    if (!s.ok()) {
      fail("cannot read the format version: " + s.ToString());
      return -1;
    }
    if (decode_format_version(value, v)) {
      fail("the format-version key holds something else: not a Tern store");
      return -1;
    }
    if (v > kFormatVersion) {
      fail("written by a newer Tern (store format " + std::to_string(v) + ", this one reads up to " +
           std::to_string(kFormatVersion) + ")");
      return -1;
    }
    return 1;
  }

  // True when the store holds any key at all.
  bool any_key() {
    std::unique_ptr<rocksdb::Iterator> it(db_.NewIterator(rocksdb::ReadOptions()));
    it->SeekToFirst();
    return it->Valid();
  }

  // Keys whose first byte names no kind.
  bool kinds() {
    std::unique_ptr<rocksdb::Iterator> it(db_.NewIterator(rocksdb::ReadOptions()));
    for (it->SeekToFirst(); it->Valid();) {
      const std::string_view k(it->key().data(), it->key().size());
      const auto b = static_cast<std::uint8_t>(k[0]);
      const bool known = b == static_cast<std::uint8_t>(Kind::kMeta) || b == static_cast<std::uint8_t>(Kind::kInbound) ||
                         b == static_cast<std::uint8_t>(Kind::kMessage) || b == static_cast<std::uint8_t>(Kind::kQueue) ||
                         b == static_cast<std::uint8_t>(Kind::kRetained) || b == static_cast<std::uint8_t>(Kind::kSession);
      if (!known) return fail("unknown record kind at key " + key_text(k));
      if (b == static_cast<std::uint8_t>(Kind::kMeta) && k != format_version_key()) {
        return fail("unknown meta key " + key_text(k));
      }
      it->Seek(prefix_end(k.substr(0, 1)));
    }
    return status(*it);
  }

  // Calls f(key, value) for every key of `kind`, in order; stops at the first false.
  template <typename F>
  bool each(Kind kind, F&& f) {
    const std::string lo(1, static_cast<char>(kind));
    const std::string hi = prefix_end(lo);
    rocksdb::Slice upper(hi);
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db_.NewIterator(ro));
    for (it->Seek(lo); it->Valid(); it->Next()) {
      if (!f(std::string_view(it->key().data(), it->key().size()),
             std::string_view(it->value().data(), it->value().size()))) {
        return false;
      }
    }
    return status(*it);
  }

  // Sessions, the ids of the stored messages and the references of queue entries and inbound ids
  // (no visitor yet). Counts every stored queue entry and inbound id; collects the orphans' keys.
  bool references() {
    bool ok = each(Kind::kSession, [&](std::string_view k, std::string_view v) {
      SessionRecord s;
      if (auto e = decode(k, v, s)) return fail(e, k);
      sessions_.insert(s.client_id);
      ++counts.sessions;
      return true;
    });
    // Message keys only: messages() decodes the values (a key of the wrong size fails there).
    ok = ok && each(Kind::kMessage, [&](std::string_view k, std::string_view) {
      if (k.size() == 9) {
        std::uint64_t id = 0;
        for (std::size_t i = 1; i < 9; ++i) id = id << 8 | static_cast<std::uint8_t>(k[i]);
        stored_.insert(id);
      }
      return true;
    });
    ok = ok && each(Kind::kQueue, [&](std::string_view k, std::string_view v) {
      QueueEntry q;
      if (auto e = decode(k, v, q)) return fail(e, k);
      ++counts.queue_entries;
      if (orphan(q)) {
        orphans.emplace_back(k);
        ++orphan_entries;
      } else if (!q.inline_message()) {
        referenced_.insert(q.message_id);
      }
      return true;
    });
    ok = ok && each(Kind::kInbound, [&](std::string_view k, std::string_view v) {
      InboundQos2 in;
      if (auto e = decode(k, v, in)) return fail(e, k);
      ++counts.inbound;
      if (orphan(in)) {
        orphans.emplace_back(k);
        ++orphan_inbound;
      } else if (in.message_id != 0) {
        referenced_.insert(in.message_id);
      }
      return true;
    });
    return ok;
  }

  // A queue entry or inbound id whose session or message is not stored (after references()).
  bool orphan(const QueueEntry& q) const {
    return !sessions_.count(q.client_id) || (!q.inline_message() && !stored_.count(q.message_id));
  }
  bool orphan(const InboundQos2& i) const {
    return !sessions_.count(i.client_id) || (i.message_id != 0 && !stored_.count(i.message_id));
  }

  // Messages: visits the ones a queue entry or inbound id that is not an orphan refers to, collects
  // the others in `unreferenced`.
  bool messages(Visitor* v, std::vector<std::uint64_t>& unreferenced) {
    return each(Kind::kMessage, [&](std::string_view k, std::string_view val) {
      MessageRecord m;
      if (auto e = decode(k, val, m)) return fail(e, k);
      ++counts.messages;
      if (referenced_.count(m.id)) {
        if (v) v->message(std::move(m));
      } else {
        unreferenced.push_back(m.id);
      }
      return true;
    });
  }

  template <typename Record, typename F>
  bool visit(Kind kind, F&& f) {
    return each(kind, [&](std::string_view k, std::string_view v) {
      Record r;
      if (auto e = decode(k, v, r)) return fail(e, k);
      f(std::move(r));
      return true;
    });
  }

  bool retained(Visitor* v) {
    return each(Kind::kRetained, [&](std::string_view k, std::string_view val) {
      RetainedRecord r;
      if (auto e = decode(k, val, r)) return fail(e, k);
      ++counts.retained;
      if (v) v->retained(std::move(r));
      return true;
    });
  }

  LoadCounts counts;  // stored records, orphans and unreferenced messages included
  std::vector<std::string> orphans;  // their keys
  std::uint64_t orphan_entries = 0, orphan_inbound = 0;
  std::string error;

 private:
  bool fail(std::string what) {
    if (error.empty()) error = std::move(what);
    return false;
  }
  bool fail(RecordError e, std::string_view key) { return fail(std::string(e.what) + " at key " + key_text(key)); }
  bool status(rocksdb::Iterator& it) {
    if (it.status().ok()) return true;
    return fail("cannot read the store: " + it.status().ToString());
  }

  rocksdb::DB& db_;
  std::unordered_set<std::string> sessions_;
  std::unordered_set<std::uint64_t> stored_;      // message ids
  std::unordered_set<std::uint64_t> referenced_;  // by queue entries and inbound ids that are not orphans
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Store

std::unique_ptr<Store> Store::open(const Options& options, std::string& error) {
  namespace fs = std::filesystem;
  std::unique_ptr<Store> st(new Store);
  st->options_ = options;
  if (st->options_.sync_manifest.empty()) st->options_.sync_manifest = options.path + ".syncs";
  const std::string& path = options.path;
  std::error_code ec;
  if (fs::exists(path, ec)) {
    if (!fs::is_directory(path, ec)) {
      error = path + " is not a directory";
      return nullptr;
    }
    // RocksDB would create a store among the files of a directory that is not one: refuse that.
    if (!fs::is_empty(path, ec) && !fs::exists(fs::path(path) / "CURRENT", ec)) {
      error = path + " holds files that are not a Tern store";
      return nullptr;
    }
  }
  rocksdb::Options o = db_options();
  if (options.track_syncs) {
    st->tracker_ = std::make_shared<SyncTrackingFs>(rocksdb::FileSystem::Default(), st->options_.sync_manifest);
    st->env_ = rocksdb::NewCompositeEnv(st->tracker_);
    o.env = st->env_.get();
  }
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(o, path, &raw);
  if (!s.ok()) {
    error = "cannot open the store at " + path + ": " + s.ToString();
    return nullptr;
  }
  st->db_.reset(raw);
  Scanner scan(*st->db_);
  std::uint32_t version = 0;
  switch (scan.version(version)) {
    case -1:
      error = path + ": " + scan.error;
      return nullptr;
    case 0: {
      if (scan.any_key()) {
        error = path + " holds a RocksDB database without Tern's format-version key: not a Tern store";
        return nullptr;
      }
      std::string v;
      encode_format_version(kFormatVersion, v);
      rocksdb::WriteOptions wo;
      wo.sync = true;
      s = st->db_->Put(wo, format_version_key(), v);
      if (!s.ok()) {
        error = "cannot initialise the store at " + path + ": " + s.ToString();
        return nullptr;
      }
      break;
    }
    default: break;
  }
  st->refresh_size();
  st->last_sync_ = std::chrono::steady_clock::now();
  st->thread_ = std::thread([p = st.get()] { p->run(); });
  return st;
}

Store::~Store() { close(); }

void Store::submit(Batch&& batch, std::function<void(Status)> done) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      const bool was_empty = queue_.empty();
      queue_.push_back(Pending{std::move(batch), std::move(done)});
      if (was_empty) wake_.notify_one();
      return;
    }
  }
  if (done) done(Status::kClosed);
}

Status Store::write(Batch&& batch) {
  std::promise<Status> p;
  auto f = p.get_future();
  submit(std::move(batch), [&p](Status s) { p.set_value(s); });
  return f.get();
}

void Store::run() {
  using Clock = std::chrono::steady_clock;
  // RocksDB counts into thread-local perf counters by default: a TLS lookup per key comparison.
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  std::unique_lock lock(mu_);
  for (;;) {
    if (queue_.empty() && !stopping_) {
      Clock::time_point deadline = Clock::time_point::max();
      if (unsynced_) deadline = last_sync_ + options_.batch_window;
      if (full_ && compact_when_full_) deadline = std::min(deadline, last_compaction_ + std::chrono::seconds(1));
      // While full, the store looks for space again by itself: a broker that stops submitting puts
      // when full() says so must still see it turn false.
      if (needs_resume_) {
        deadline = std::min(deadline, next_recovery_ + kIdleRecovery);
      } else if (full_) {
        deadline = std::min(deadline, last_size_poll_ + std::chrono::seconds(1));
      }
      if (deadline == Clock::time_point::max()) {
        wake_.wait(lock, [&] { return !queue_.empty() || stopping_; });
      } else {
        wake_.wait_until(lock, deadline, [&] { return !queue_.empty() || stopping_; });
      }
    }
    std::vector<Pending> group;
    group.swap(queue_);
    const bool stop = stopping_ && group.empty();
    lock.unlock();
    if (!group.empty()) commit(group);
    const auto now = Clock::now();
    if (unsynced_ && !needs_resume_ && (stop || now >= last_sync_ + options_.batch_window)) sync_wal();
    if (full_ && compact_when_full_ && !needs_resume_ && now >= last_compaction_ + std::chrono::seconds(1)) {
      // Erases only free space once compaction has dropped what they delete.
      rocksdb::FlushOptions fo;
      db_->Flush(fo);
      rocksdb::CompactRangeOptions co;
      co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
      db_->CompactRange(co, nullptr, nullptr);
      last_compaction_ = Clock::now();
      compact_when_full_ = false;
      refresh_size();
    }
    if (group.empty() && !stop) idle_upkeep(Clock::now());
    if (stop) break;
    lock.lock();
  }
  // Graceful stop: everything submitted is written and synced; the memtables are flushed so that
  // the next start does not replay the WAL.
  if (db_ && !needs_resume_) {
    rocksdb::FlushOptions fo;
    db_->Flush(fo);
  }
}

void Store::idle_upkeep(std::chrono::steady_clock::time_point now) {
  if (needs_resume_) {
    if (now >= next_recovery_ + kIdleRecovery) resume_if_needed();
  } else if (full_ && now >= last_size_poll_ + std::chrono::seconds(1)) {
    refresh_size();  // RocksDB's own compactions may have made room
  }
}

void Store::commit(std::vector<Pending>& group) {
  std::vector<Status> result(group.size(), Status::kOk);
  write_group(group, result);
  for (std::size_t i = 0; i < group.size(); ++i) {
    switch (result[i]) {
      case Status::kOk: batches_.fetch_add(1, std::memory_order_relaxed); break;
      case Status::kFull: full_count_.fetch_add(1, std::memory_order_relaxed); break;
      default: failed_.fetch_add(1, std::memory_order_relaxed); break;
    }
    if (group[i].done) group[i].done(result[i]);
  }
}

Status Store::write_group(std::vector<Pending>& group, std::vector<Status>& result) {
  Status blocked = Status::kOk;
  if (!resume_if_needed()) blocked = last_error_;
  rocksdb::WriteBatch wb;
  std::vector<std::size_t> included;
  std::uint64_t records = 0;
  bool erases_only = true;
  for (std::size_t i = 0; i < group.size(); ++i) {
    Batch& b = group[i].batch;
    if (blocked != Status::kOk) {
      result[i] = blocked;
    } else if (full_ && b.has_puts_ && !b.allow_at_bound_) {
      result[i] = Status::kFull;
    } else if (!b.empty()) {
      replay(b.rep_, wb);
      included.push_back(i);
      records += b.ops_;
      if (b.has_puts_) erases_only = false;
    }
  }
  if (included.empty()) return Status::kOk;
  rocksdb::WriteOptions wo;
  wo.sync = options_.mode == Options::Mode::kSync;
  auto s = db_->Write(wo, &wb);
  Status outcome = Status::kOk;
  if (s.ok()) {
    writes_.fetch_add(1, std::memory_order_relaxed);
    records_.fetch_add(records, std::memory_order_relaxed);
    if (wo.sync) {
      syncs_.fetch_add(1, std::memory_order_relaxed);
    } else {
      unsynced_ = true;
    }
    (void)erases_only;
  } else {
    outcome = s.IsNoSpace() ? Status::kFull : Status::kIoError;
    last_error_ = outcome;
    needs_resume_ = true;
    for (auto i : included) result[i] = outcome;
  }
  refresh_size();
  // At the bound, what was just written (erases, state changes) frees space only once compaction has
  // dropped what it deletes: compact (at most once a second) whenever the store is full after a write.
  if (full_ && outcome == Status::kOk) compact_when_full_ = true;
  return outcome;
}

bool Store::resume_if_needed() {
  if (!needs_resume_) return true;
  // After a failed write RocksDB refuses writes until Resume() succeeds, which it does once the
  // cause (a full disk) is gone; some errors it only clears on a reopen. Either way the store
  // recovers by itself; meanwhile batches fail fast, and recovery is tried at most every 200 ms.
  const auto now = std::chrono::steady_clock::now();
  if (now < next_recovery_) return false;
  next_recovery_ = now + std::chrono::milliseconds(200);
  if (db_) {
    auto s = db_->Resume();
    if (s.ok()) {
      recovered();
      return true;
    }
    if (s.IsBusy()) {
      // RocksDB's own recovery is running. It waits for free space of a whole memtable's size, which
      // a small disk may never have: after a few seconds the store reopens the database instead.
      if (busy_since_ == std::chrono::steady_clock::time_point{}) busy_since_ = now;
      if (now - busy_since_ < std::chrono::seconds(3)) return false;
    }
    busy_since_ = {};
    if (s.IsNoSpace()) {
      last_error_ = Status::kFull;
      publish_full();
    }
  }
  if (!reopen()) {
    publish_full();
    return false;
  }
  recovered();
  return true;
}

void Store::recovered() {
  needs_resume_ = false;
  busy_since_ = {};
  // Resume() and a reopen both flush the memtables: what was written before is durable now, and
  // the WAL the failed write belonged to must not be synced again (RocksDB asserts on that).
  unsynced_ = false;
  refresh_size();
}

bool Store::reopen() {
  if (db_) {
    db_->Close();
    db_.reset();
  }
  rocksdb::Options o = db_options();
  if (env_) o.env = env_.get();
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(o, options_.path, &raw);
  if (!s.ok()) {
    last_error_ = s.IsNoSpace() ? Status::kFull : Status::kIoError;
    return false;
  }
  db_.reset(raw);
  return true;
}

bool Store::sync_wal() {
  auto s = db_->SyncWAL();
  last_sync_ = std::chrono::steady_clock::now();
  if (!s.ok()) {
    last_error_ = s.IsNoSpace() ? Status::kFull : Status::kIoError;
    needs_resume_ = true;
    publish_full();
    return false;
  }
  syncs_.fetch_add(1, std::memory_order_relaxed);
  unsynced_ = false;
  return true;
}

void Store::refresh_size() {
  if (!db_) return;
  std::uint64_t sst = 0, mem = 0;
  db_->GetIntProperty("rocksdb.live-sst-files-size", &sst);
  db_->GetIntProperty("rocksdb.cur-size-all-mem-tables", &mem);
  size_.store(sst + mem, std::memory_order_relaxed);
  full_ = options_.max_bytes != 0 && sst + mem >= options_.max_bytes;
  last_size_poll_ = std::chrono::steady_clock::now();
  publish_full();
}

void Store::publish_full() {
  // What a batch with puts would get now: kFull at the bound, or last_error_ while RocksDB is in its
  // error state (write_group).
  full_now_.store(full_ || (needs_resume_ && last_error_ == Status::kFull), std::memory_order_relaxed);
}

void Store::close() {
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    closed_ = true;
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
  if (db_) {
    db_->Close();
    db_.reset();
  }
}

Counters Store::counters() const {
  Counters c;
  c.batches = batches_.load(std::memory_order_relaxed);
  c.records = records_.load(std::memory_order_relaxed);
  c.writes = writes_.load(std::memory_order_relaxed);
  c.syncs = syncs_.load(std::memory_order_relaxed);
  c.full = full_count_.load(std::memory_order_relaxed);
  c.failed = failed_.load(std::memory_order_relaxed);
  return c;
}

std::uint64_t Store::approximate_size() const { return size_.load(std::memory_order_relaxed); }

bool Store::load(Visitor& visitor, std::string& error, LoadCounts* counts) {
  Scanner scan(*db_);
  std::vector<std::uint64_t> unreferenced;
  bool ok = scan.kinds() && scan.references() && scan.messages(&visitor, unreferenced) &&
            scan.visit<SessionRecord>(Kind::kSession, [&](SessionRecord&& s) { visitor.session(std::move(s)); }) &&
            scan.visit<QueueEntry>(Kind::kQueue,
                                   [&](QueueEntry&& q) {
                                     if (!scan.orphan(q)) visitor.queue_entry(std::move(q));
                                   }) &&
            scan.visit<InboundQos2>(Kind::kInbound,
                                    [&](InboundQos2&& i) {
                                      if (!scan.orphan(i)) visitor.inbound(std::move(i));
                                    }) &&
            scan.retained(&visitor);
  if (!ok) {
    error = options_.path + ": " + scan.error;
    return false;
  }
  scan.counts.messages -= unreferenced.size();
  scan.counts.queue_entries -= scan.orphan_entries;
  scan.counts.inbound -= scan.orphan_inbound;
  scan.counts.unreferenced_deleted = unreferenced.size();
  scan.counts.orphans_deleted = scan.orphans.size();
  if (!unreferenced.empty() || !scan.orphans.empty()) {
    rocksdb::WriteBatch wb;
    for (auto id : unreferenced) wb.Delete(message_key(id));
    for (const auto& k : scan.orphans) wb.Delete(k);
    rocksdb::WriteOptions wo;
    wo.sync = true;
    auto s = db_->Write(wo, &wb);
    if (!s.ok()) {
      error = options_.path + ": cannot delete unreferenced messages and orphans: " + s.ToString();
      return false;
    }
  }
  if (counts) *counts = scan.counts;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Tools

namespace {

std::unique_ptr<rocksdb::DB> open_read_only(const std::string& path, std::string& error) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(fs::path(path) / "CURRENT", ec)) {
    error = path + " is not a Tern store (no RocksDB database there)";
    return nullptr;
  }
  rocksdb::Options o = db_options();
  o.create_if_missing = false;
  // A read-only open keeps the replayed WAL in the memtable and the tools iterate it many times: a
  // skip list, which stays sorted, suits that better than the writer's vector.
  o.memtable_factory = std::make_shared<rocksdb::SkipListFactory>();
  o.allow_concurrent_memtable_write = true;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::OpenForReadOnly(o, path, &raw);
  if (!s.ok()) {
    error = "cannot open the store at " + path + ": " + s.ToString();
    return nullptr;
  }
  return std::unique_ptr<rocksdb::DB>(raw);
}

std::string quote_text(std::string_view s, std::size_t max = std::string_view::npos) {
  std::string out = "\"";
  std::size_t n = 0;
  for (unsigned char c : s) {
    if (n++ == max) {
      out += "...";
      break;
    }
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c >= 0x20 && c < 0x7F) {
      out.push_back(static_cast<char>(c));
    } else {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  out.push_back('"');
  return out;
}

void print_props(std::ostream& out, const Properties& p) {
  if (p.empty()) return;
  out << " props={";
  const char* sep = "";
  auto field = [&](const char* name, const std::string& v) {
    out << sep << name << '=' << v;
    sep = " ";
  };
  if (p.payload_format) field("payload_format", std::to_string(*p.payload_format));
  if (p.message_expiry) field("message_expiry", std::to_string(*p.message_expiry));
  if (p.content_type) field("content_type", quote_text(*p.content_type));
  if (p.response_topic) field("response_topic", quote_text(*p.response_topic));
  if (p.correlation_data) field("correlation_data", quote_text(*p.correlation_data));
  for (const auto& u : p.user_properties) field("user", quote_text(u.key) + ":" + quote_text(u.value));
  out << '}';
}

void print_message(std::ostream& out, const MessageRecord& m) {
  out << " topic=" << quote_text(m.topic) << " qos=" << int{m.qos} << " retain=" << (m.retain ? 1 : 0);
  if (m.expiry) out << " expiry_ms=" << *m.expiry;
  out << " origin=" << quote_text(m.origin);
  print_props(out, m.props);
  out << " payload[" << m.payload.size() << "]=" << quote_text(m.payload, 64);
}

const char* state_name(QueueState s) {
  switch (s) {
    case QueueState::kQueued: return "queued";
    case QueueState::kSent: return "sent";
    case QueueState::kReleased: return "released";
  }
  return "?";
}

}  // namespace

CheckReport check(const std::string& path) {
  CheckReport r;
  auto db = open_read_only(path, r.problem);
  if (!db) return r;
  Scanner scan(*db);
  int v = scan.version(r.format_version);
  if (v == 0) {
    r.problem = scan.any_key() ? "no format-version key: not a Tern store" : "";
    r.ok = r.problem.empty();
    return r;
  }
  std::vector<std::uint64_t> unreferenced;
  bool ok = v == 1 && scan.kinds() && scan.references() && scan.messages(nullptr, unreferenced) && scan.retained(nullptr);
  r.messages = scan.counts.messages;
  r.sessions = scan.counts.sessions;
  r.queue_entries = scan.counts.queue_entries;
  r.inbound = scan.counts.inbound;
  r.retained = scan.counts.retained;
  r.unreferenced = unreferenced.size();
  r.orphans = scan.orphans.size();
  std::uint64_t sst = 0, mem = 0;
  db->GetIntProperty("rocksdb.live-sst-files-size", &sst);
  db->GetIntProperty("rocksdb.cur-size-all-mem-tables", &mem);
  r.bytes = sst + mem;
  r.ok = ok;
  if (!ok) r.problem = scan.error;
  return r;
}

bool dump(const std::string& path, std::ostream& out, std::string& error) {
  auto db = open_read_only(path, error);
  if (!db) return false;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const std::string_view k(it->key().data(), it->key().size());
    const std::string_view v(it->value().data(), it->value().size());
    RecordError e;
    switch (static_cast<Kind>(static_cast<std::uint8_t>(k[0]))) {
      case Kind::kMeta: {
        std::uint32_t version = 0;
        e = k == format_version_key() ? decode_format_version(v, version) : RecordError{"unknown meta key"};
        if (!e) out << "format-version " << version << '\n';
        break;
      }
      case Kind::kMessage: {
        MessageRecord m;
        e = decode(k, v, m);
        if (!e) {
          out << "message id=" << m.id;
          print_message(out, m);
          out << '\n';
        }
        break;
      }
      case Kind::kRetained: {
        RetainedRecord r;
        e = decode(k, v, r);
        if (!e) {
          out << "retained";
          print_message(out, r.message);
          out << '\n';
        }
        break;
      }
      case Kind::kSession: {
        SessionRecord s;
        e = decode(k, v, s);
        if (!e) {
          out << "session client=" << quote_text(s.client_id) << " protocol=" << int{static_cast<std::uint8_t>(s.version)}
              << " expiry=" << s.expiry_interval;
          if (s.disconnected_at) out << " disconnected_ms=" << *s.disconnected_at;
          out << " subscriptions=[";
          const char* sep = "";
          for (const auto& sub : s.subscriptions) {
            out << sep << quote_text(sub.filter) << " qos=" << int{sub.qos} << " nl=" << (sub.no_local ? 1 : 0)
                << " rap=" << (sub.retain_as_published ? 1 : 0) << " rh=" << int{sub.retain_handling};
            if (sub.subscription_id) out << " id=" << sub.subscription_id;
            sep = ", ";
          }
          out << ']';
          if (s.will) {
            out << " will={topic=" << quote_text(s.will->topic) << " qos=" << int{s.will->qos}
                << " retain=" << (s.will->retain ? 1 : 0) << " delay=" << s.will->delay;
            print_props(out, s.will->props);
            out << " payload[" << s.will->payload.size() << "]=" << quote_text(s.will->payload, 64) << '}';
          }
          out << '\n';
        }
        break;
      }
      case Kind::kQueue: {
        QueueEntry q;
        e = decode(k, v, q);
        if (!e) {
          out << "queue client=" << quote_text(q.client_id) << " seq=" << q.seq << " message=" << q.message_id
              << " qos=" << int{q.qos} << " retain=" << (q.retain ? 1 : 0) << " state=" << state_name(q.state)
              << " packet_id=" << q.packet_id << " dup=" << (q.dup ? 1 : 0);
          for (auto id : q.subscription_ids) out << " sub_id=" << id;
          if (q.message) print_message(out, *q.message);
          out << '\n';
        }
        break;
      }
      case Kind::kInbound: {
        InboundQos2 in;
        e = decode(k, v, in);
        if (!e) {
          out << "inbound client=" << quote_text(in.client_id) << " packet_id=" << in.packet_id;
          if (in.message_id) out << " message=" << in.message_id;
          out << '\n';
        }
        break;
      }
      default: e = {"unknown record kind"}; break;
    }
    if (e) out << "bad key=" << quote_text(k) << " value[" << v.size() << "]: " << e.what << '\n';
  }
  if (!it->status().ok()) {
    error = "cannot read the store at " + path + ": " + it->status().ToString();
    return false;
  }
  return true;
}

}  // namespace tern::store
