#pragma once
// `persistence true` with Mosquitto's meaning: the broker's state (persistent sessions with their
// subscriptions, in-flight messages in both directions and offline queues; retained messages) is
// written to one file on shutdown and every `autosave_interval`, and read back at start. A crash
// loses what changed since the last save, exactly as with Mosquitto; docs/configuration.md says so.
//
// Encoding a shard runs on that shard's worker thread (or when no worker runs); writing and loading
// run on the main thread. Loading happens before the workers start.
#include <cstdint>
#include <string>
#include <vector>

#include "protocol/message.hpp"

namespace tern::broker {

class Broker;
class Shard;
class RetainedStore;

// One shard's persistent sessions, as a snapshot section.
std::string encode_sessions(const Shard& shard, protocol::TimePoint now);
// Every retained message, as a snapshot section.
std::string encode_retained(const RetainedStore& store, protocol::TimePoint now);
// Writes the sections to `path` atomically (temporary file, fsync, rename). False with `error` set
// when the file cannot be written; the previous snapshot is then left as it was.
bool write_snapshot(const std::string& path, const std::vector<std::string>& sections, std::string& error);

struct RestoreCounts {
  std::size_t sessions = 0;
  std::size_t retained = 0;
};
// Restores a snapshot into `broker`, whose workers must not be running yet. A missing file is an
// empty state. A file that is not Tern's (Mosquitto's mosquitto.db, say) or fails its checksum
// (torn or damaged) gives false and `error` before anything is restored.
bool load_snapshot(const std::string& path, Broker& broker, RestoreCounts& counts, std::string& error);

}  // namespace tern::broker
