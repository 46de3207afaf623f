// Unit tests of the Mosquitto-compatible configuration parser (config::load_string and friends).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <typeinfo>
#include <string>

#include "config/config.hpp"

namespace {

using tern::config::Config;
using tern::config::ConfigError;

Config load(const std::string& text, const std::string& name = "t.conf") {
  Config c;
  tern::config::load_string(text, name, c);
  return c;
}

// The ConfigError message of loading `text`, or "" when it loads.
std::string error_of(const std::string& text, const std::string& name = "t.conf") {
  try {
    load(text, name);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "'" << (haystack) << "' lacks '" << (needle) << "'"

// A fresh directory under the system temp dir, removed at the end of the test.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() /
           ("tern-config-test-" + std::to_string(rd()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& text) const {
    auto p = path / name;
    std::ofstream(p) << text;
    return p.string();
  }
};

TEST(Config, DefaultsWithoutAnyKey) {
  Config c = load("# only a comment\n\n   \n\t# indented comment\n");
  EXPECT_TRUE(c.listeners.empty());
  EXPECT_FALSE(c.listeners_configured);
  EXPECT_FALSE(c.allow_anonymous.has_value());
  EXPECT_EQ(c.max_inflight_messages, 20);
  EXPECT_EQ(c.max_queued_messages, 1000u);
  EXPECT_EQ(c.persistent_client_expiration, 0u);
  EXPECT_TRUE(c.warnings.empty());
}

TEST(Config, ListenerWithoutBindAddress) {
  Config c = load("listener 1884\n");
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].port, 1884);
  EXPECT_EQ(c.listeners[0].bind_address, "");
  EXPECT_TRUE(c.listeners_configured);
}

TEST(Config, ListenerWithBindAddress) {
  Config c = load("listener 8883 127.0.0.1\nlistener 1883 ::\n");
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[0].port, 8883);
  EXPECT_EQ(c.listeners[0].bind_address, "127.0.0.1");
  EXPECT_EQ(c.listeners[1].port, 1883);
  EXPECT_EQ(c.listeners[1].bind_address, "::");
}

TEST(Config, ListenerRejectsBadPort) {
  EXPECT_CONTAINS(error_of("listener 70000\n"), "t.conf:1: listener");
  EXPECT_CONTAINS(error_of("listener abc\n"), "t.conf:1: listener");
  EXPECT_CONTAINS(error_of("listener\n"), "t.conf:1: listener");
}

TEST(Config, ListenerSettingsApplyToTheLastListener) {
  Config c = load("listener 1883\nlistener 1884\nsocket_domain ipv4\nmax_connections 10\n");
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[0].socket_domain, "");
  EXPECT_EQ(c.listeners[1].socket_domain, "ipv4");
  EXPECT_EQ(c.listeners[1].max_connections, 10u);
}

TEST(Config, BadMaxConnectionsValueIsAConfigError) {
  // A bad number must be reported like every other bad value (file, line, key), not escape as a
  // std::invalid_argument from std::stol.
  try {
    load("listener 1883\nmax_connections lots\n");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_CONTAINS(e.what(), "t.conf:2: max_connections");
  } catch (const std::exception& e) {
    FAIL() << "threw " << typeid(e).name() << " instead of ConfigError: " << e.what();
  }
}

TEST(Config, MaxConnectionsWithoutListenerCreatesAConfiguredDefaultListener) {
  // Mosquitto 2.0 creates the default listener (port 1883, all addresses) when max_connections is set
  // without a listener, and a configured listener turns anonymous access off. Tern must not end up
  // listening on every address with anonymous access on.
  Config c = load("max_connections 100\n");
  tern::config::finalize(c);
  bool all_addresses = false;
  for (const auto& l : c.listeners) {
    if (l.bind_address != "127.0.0.1" && l.bind_address != "::1") all_addresses = true;
  }
  ASSERT_TRUE(all_addresses) << "listeners: " << c.listeners.size();
  EXPECT_TRUE(c.listeners_configured);
  EXPECT_FALSE(c.effective_allow_anonymous()) << "anonymous access open on every address";
}

TEST(Config, AllowAnonymous) {
  EXPECT_EQ(load("allow_anonymous true\n").allow_anonymous, std::optional<bool>(true));
  EXPECT_EQ(load("allow_anonymous false\n").allow_anonymous, std::optional<bool>(false));
  EXPECT_CONTAINS(error_of("allow_anonymous yes\n"), "t.conf:1: allow_anonymous");
  EXPECT_CONTAINS(error_of("allow_anonymous\n"), "t.conf:1: allow_anonymous");
}

TEST(Config, MaxInflightMessages) {
  EXPECT_EQ(load("max_inflight_messages 5\n").max_inflight_messages, 5);
  EXPECT_EQ(load("max_inflight_messages 0\n").max_inflight_messages, 0);
  EXPECT_CONTAINS(error_of("max_inflight_messages 65536\n"), "t.conf:1: max_inflight_messages");
  EXPECT_CONTAINS(error_of("max_inflight_messages -1\n"), "t.conf:1: max_inflight_messages");
}

TEST(Config, MaxQueuedMessages) {
  EXPECT_EQ(load("max_queued_messages 0\n").max_queued_messages, 0u);
  EXPECT_EQ(load("max_queued_messages 250000\n").max_queued_messages, 250000u);
  EXPECT_CONTAINS(error_of("max_queued_messages 12x\n"), "t.conf:1: max_queued_messages");
}

TEST(Config, SharedSubscriptionStrategy) {
  using S = Config::SharedStrategy;
  EXPECT_EQ(Config{}.shared_subscription_strategy, S::kRoundRobin);
  EXPECT_EQ(load("shared_subscription_strategy round_robin\n").shared_subscription_strategy, S::kRoundRobin);
  EXPECT_EQ(load("shared_subscription_strategy sticky\n").shared_subscription_strategy, S::kSticky);
  EXPECT_CONTAINS(error_of("shared_subscription_strategy random\n"), "t.conf:1: shared_subscription_strategy");
  EXPECT_CONTAINS(error_of("shared_subscription_strategy\n"), "t.conf:1: shared_subscription_strategy");
  EXPECT_CONTAINS(error_of("shared_subscription_strategy sticky round_robin\n"), "t.conf:1: shared_subscription_strategy");
}

TEST(Config, PersistentClientExpirationDurations) {
  EXPECT_EQ(load("persistent_client_expiration 14d\n").persistent_client_expiration, 1209600u);
  EXPECT_EQ(load("persistent_client_expiration 2h\n").persistent_client_expiration, 7200u);
  EXPECT_EQ(load("persistent_client_expiration 1w\n").persistent_client_expiration, 604800u);
  EXPECT_EQ(load("persistent_client_expiration 1m\n").persistent_client_expiration, 2592000u);
  EXPECT_EQ(load("persistent_client_expiration 1y\n").persistent_client_expiration, 31536000u);
  EXPECT_CONTAINS(error_of("persistent_client_expiration 14\n"), "t.conf:1: persistent_client_expiration");
  EXPECT_CONTAINS(error_of("persistent_client_expiration d\n"), "t.conf:1: persistent_client_expiration");
  EXPECT_CONTAINS(error_of("persistent_client_expiration 1000000y\n"), "t.conf:1: persistent_client_expiration");
}

TEST(Config, LogTypeAccumulatesAndReplacesTheDefault) {
  Config def = load("");
  EXPECT_FALSE(def.log_types_set);
  Config c = load("log_type error\nlog_type subscribe\n");
  EXPECT_TRUE(c.log_types_set);
  EXPECT_EQ(c.log_types, tern::config::kLogError | tern::config::kLogSubscribe)
      << "the first log_type replaces the default set";
}

TEST(Config, LogTypeAllAndNone) {
  EXPECT_EQ(load("log_type all\n").log_types, unsigned{tern::config::kLogAll});
  Config none = load("log_type none\n");
  EXPECT_TRUE(none.log_types_set);
  EXPECT_EQ(none.log_types, 0u);
  EXPECT_CONTAINS(error_of("log_type chatty\n"), "t.conf:1: log_type");
}

TEST(Config, LogDest) {
  Config c = load("log_dest file /var/log/tern.log\nlog_dest stdout\n");
  EXPECT_EQ(c.log_dest, (std::vector<std::string>{"file /var/log/tern.log", "stdout"}));
  EXPECT_CONTAINS(error_of("log_dest file\n"), "t.conf:1: log_dest");
  EXPECT_CONTAINS(error_of("log_dest pigeon\n"), "t.conf:1: log_dest");
  Config s = load("log_dest syslog\n");
  EXPECT_TRUE(s.log_dest.empty());
  ASSERT_EQ(s.warnings.size(), 1u);
}

TEST(Config, UnknownKeyErrorNamesFileLineAndKey) {
  try {
    load("listener 1883\n# comment\nfrobnicate 1\n");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_CONTAINS(e.what(), "t.conf:3: frobnicate");
  }
}

TEST(Config, WindowsLineEndingsAreAccepted) {
  Config c = load("listener 1884\r\nallow_anonymous true\r\n");
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].port, 1884);
  EXPECT_EQ(c.allow_anonymous, std::optional<bool>(true));
}

TEST(Config, PasswordAndAclFilesAreGlobalByDefault) {
  Config c = load("listener 1883\npassword_file /etc/mosquitto/passwd\nacl_file /etc/mosquitto/my acl\n");
  EXPECT_EQ(c.password_file, "/etc/mosquitto/passwd");
  EXPECT_EQ(c.acl_file, "/etc/mosquitto/my acl") << "a path may contain spaces, as in Mosquitto";
  EXPECT_EQ(c.listeners[0].password_file, "");
  EXPECT_EQ(c.password_file_of(&c.listeners[0]), "/etc/mosquitto/passwd");
  EXPECT_FALSE(c.allow_anonymous_on(&c.listeners[0])) << "a configured listener: anonymous off (Mosquitto 2.0)";
  EXPECT_CONTAINS(error_of("password_file\n"), "t.conf:1: password_file");
  EXPECT_CONTAINS(error_of("acl_file\n"), "t.conf:1: acl_file");
}

TEST(Config, PerListenerSettingsGiveEachListenerItsOwnSecurity) {
  Config c = load("per_listener_settings true\nallow_anonymous true\n"
                  "listener 1883\npassword_file /a\nallow_anonymous false\n"
                  "listener 1884\nacl_file /acl\n");
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_TRUE(c.per_listener_settings);
  EXPECT_EQ(c.password_file_of(&c.listeners[0]), "/a");
  EXPECT_EQ(c.password_file_of(&c.listeners[1]), "");
  EXPECT_EQ(c.acl_file_of(&c.listeners[0]), "");
  EXPECT_EQ(c.acl_file_of(&c.listeners[1]), "/acl");
  EXPECT_FALSE(c.allow_anonymous_on(&c.listeners[0]));
  EXPECT_TRUE(c.allow_anonymous_on(&c.listeners[1])) << "the value before the first listener is the default";
  Config g = load("listener 1883\npassword_file /a\nlistener 1884\npassword_file /b\n");
  EXPECT_EQ(g.password_file_of(&g.listeners[0]), "/b") << "without per_listener_settings the last one counts";
}

TEST(Config, ClientidPrefixes) {
  EXPECT_EQ(load("clientid_prefixes plant-\n").clientid_prefixes, "plant-");
  EXPECT_CONTAINS(error_of("clientid_prefixes\n"), "t.conf:1: clientid_prefixes");
}

TEST(Config, PersistenceDefaultsToTheStore) {
  Config d = load("");
  EXPECT_TRUE(d.persistence) << "on by default (Mosquitto: off)";
  EXPECT_EQ(d.persistence_location, "");
  EXPECT_EQ(d.store_path(), "tern-store");
  EXPECT_EQ(d.persistence_mode, Config::PersistenceMode::kSync);
  EXPECT_EQ(d.persistence_batch_window, 10u);
  EXPECT_EQ(d.persistence_max_size, 0u);
  EXPECT_FALSE(d.persistence_track_syncs);
  EXPECT_TRUE(d.warnings.empty());
  Config off = load("persistence false\n");
  EXPECT_FALSE(off.persistence);
  EXPECT_CONTAINS(error_of("persistence maybe\n"), "t.conf:1: persistence");
  EXPECT_CONTAINS(error_of("persistence\n"), "t.conf:1: persistence");
}

TEST(Config, StorePathIsTernStoreInThePersistenceLocation) {
  EXPECT_EQ(load("persistence_location /var/lib/mosquitto/\n").store_path(), "/var/lib/mosquitto/tern-store");
  EXPECT_EQ(load("persistence_location /var/lib/tern\n").store_path(), "/var/lib/tern/tern-store");
  EXPECT_EQ(load("persistence_location data\n").store_path(), "data/tern-store");
  EXPECT_EQ(load("persistence_location /\n").store_path(), "/tern-store");
  EXPECT_CONTAINS(error_of("persistence_location\n"), "t.conf:1: persistence_location");
  EXPECT_CONTAINS(error_of("persistence_location /a /b\n"), "t.conf:1: persistence_location");
}

TEST(Config, PersistenceMode) {
  using M = Config::PersistenceMode;
  EXPECT_EQ(load("persistence_mode sync\n").persistence_mode, M::kSync);
  EXPECT_EQ(load("persistence_mode batched\n").persistence_mode, M::kBatched);
  EXPECT_EQ(load("persistence_mode batched\npersistence_mode sync\n").persistence_mode, M::kSync);
  EXPECT_CONTAINS(error_of("persistence_mode async\n"), "t.conf:1: persistence_mode");
  EXPECT_CONTAINS(error_of("persistence_mode Sync\n"), "t.conf:1: persistence_mode");
  EXPECT_CONTAINS(error_of("persistence_mode\n"), "t.conf:1: persistence_mode");
  EXPECT_CONTAINS(error_of("persistence_mode sync batched\n"), "t.conf:1: persistence_mode");
}

TEST(Config, PersistenceBatchWindow) {
  EXPECT_EQ(load("persistence_batch_window 1\n").persistence_batch_window, 1u);
  EXPECT_EQ(load("persistence_batch_window 250\n").persistence_batch_window, 250u);
  EXPECT_EQ(load("persistence_batch_window 60000\n").persistence_batch_window, 60000u);
  EXPECT_CONTAINS(error_of("persistence_batch_window 0\n"), "t.conf:1: persistence_batch_window: must be at least 1");
  EXPECT_CONTAINS(error_of("persistence_batch_window 60001\n"), "t.conf:1: persistence_batch_window");
  EXPECT_CONTAINS(error_of("persistence_batch_window -1\n"), "t.conf:1: persistence_batch_window");
  EXPECT_CONTAINS(error_of("persistence_batch_window 10ms\n"), "t.conf:1: persistence_batch_window");
  EXPECT_CONTAINS(error_of("persistence_batch_window\n"), "t.conf:1: persistence_batch_window");
}

TEST(Config, PersistenceMaxSizeWithBinarySuffixes) {
  EXPECT_EQ(load("persistence_max_size 0\n").persistence_max_size, 0u);
  EXPECT_EQ(load("persistence_max_size 1000000\n").persistence_max_size, 1000000u);
  EXPECT_EQ(load("persistence_max_size 512k\n").persistence_max_size, 512u * 1024);
  EXPECT_EQ(load("persistence_max_size 512K\n").persistence_max_size, 512u * 1024);
  EXPECT_EQ(load("persistence_max_size 64m\n").persistence_max_size, 64u * 1024 * 1024);
  EXPECT_EQ(load("persistence_max_size 64M\n").persistence_max_size, 64u * 1024 * 1024);
  EXPECT_EQ(load("persistence_max_size 20g\n").persistence_max_size, std::uint64_t{20} << 30);
  EXPECT_EQ(load("persistence_max_size 20G\n").persistence_max_size, std::uint64_t{20} << 30);
  EXPECT_EQ(load("persistence_max_size 18446744073709551615\n").persistence_max_size, UINT64_MAX);
  EXPECT_CONTAINS(error_of("persistence_max_size 18446744073709551616\n"), "t.conf:1: persistence_max_size");
  EXPECT_CONTAINS(error_of("persistence_max_size 17179869184G\n"), "t.conf:1: persistence_max_size");  // 2^64
  EXPECT_CONTAINS(error_of("persistence_max_size 10t\n"), "t.conf:1: persistence_max_size");
  EXPECT_CONTAINS(error_of("persistence_max_size 10kb\n"), "t.conf:1: persistence_max_size");
  EXPECT_CONTAINS(error_of("persistence_max_size k\n"), "t.conf:1: persistence_max_size");
  EXPECT_CONTAINS(error_of("persistence_max_size -1\n"), "t.conf:1: persistence_max_size");
  EXPECT_CONTAINS(error_of("persistence_max_size\n"), "t.conf:1: persistence_max_size");
  EXPECT_CONTAINS(error_of("persistence_max_size 1 m\n"), "t.conf:1: persistence_max_size");
}

#if TERN_TEST_HOOKS
TEST(Config, PersistenceTrackSyncsInTestBuilds) {
  EXPECT_TRUE(load("persistence_track_syncs true\n").persistence_track_syncs);
  EXPECT_FALSE(load("persistence_track_syncs false\n").persistence_track_syncs);
  EXPECT_CONTAINS(error_of("persistence_track_syncs yes\n"), "t.conf:1: persistence_track_syncs");
  EXPECT_CONTAINS(error_of("persistence_track_syncs\n"), "t.conf:1: persistence_track_syncs");
}
#else
TEST(Config, PersistenceTrackSyncsIsRefusedOutsideTestBuilds) {
  EXPECT_CONTAINS(error_of("persistence_track_syncs true\n"), "t.conf:1: persistence_track_syncs: only in test builds");
  EXPECT_CONTAINS(error_of("persistence_track_syncs false\n"), "t.conf:1: persistence_track_syncs: only in test builds");
}
#endif

TEST(Config, MosquittoSnapshotKeysAreValidatedAndIgnoredWithAWarning) {
  Config c = load("persistence true\npersistence_location /var/lib/mosquitto/\npersistence_file mosquitto.db\n"
                  "autosave_interval 60\nautosave_on_changes true\n");
  EXPECT_TRUE(c.persistence);
  EXPECT_EQ(c.store_path(), "/var/lib/mosquitto/tern-store");
  const std::string why = " is ignored: Tern's store writes every change as it happens (docs/durability.md)";
  EXPECT_EQ(c.warnings, (std::vector<std::string>{"t.conf:3: persistence_file" + why, "t.conf:4: autosave_interval" + why,
                                                  "t.conf:5: autosave_on_changes" + why}));
  // Still parsed as before (persistence_path() stays until its last user is gone).
  EXPECT_EQ(c.autosave_interval, 60u);
  EXPECT_TRUE(c.autosave_on_changes);
  EXPECT_EQ(c.persistence_path(), "/var/lib/mosquitto/mosquitto.db");
  EXPECT_EQ(load("").persistence_path(), "tern.db");
  // And still validated: a bad value is an error, not a warning.
  EXPECT_CONTAINS(error_of("autosave_interval -5\n"), "t.conf:1: autosave_interval");
  EXPECT_CONTAINS(error_of("autosave_on_changes sometimes\n"), "t.conf:1: autosave_on_changes");
  EXPECT_CONTAINS(error_of("persistence_file\n"), "t.conf:1: persistence_file");
}

// Found by fuzz_config: a line of whitespace other than spaces and tabs read past an empty list.
TEST(Config, LineOfOtherWhitespaceIsBlank) {
  EXPECT_NO_THROW(load("\r  \n"));
  EXPECT_NO_THROW(load("\v\nmax_inflight_messages 5\n\f\r\n"));
  EXPECT_EQ(load("\v\nmax_inflight_messages 5\n").max_inflight_messages, 5);
}

TEST(Config, Mqtt5FeatureKeys) {
  Config d = load("");
  EXPECT_EQ(d.max_qos, 2);
  EXPECT_TRUE(d.retain_available);
  EXPECT_EQ(d.response_topic_prefix, "response/");
  EXPECT_TRUE(d.validate_utf8_payload);
  Config c = load("max_qos 1\nretain_available false\nresponse_topic_prefix rr/\nvalidate_utf8_payload false\n");
  EXPECT_EQ(c.max_qos, 1);
  EXPECT_FALSE(c.retain_available);
  EXPECT_EQ(c.response_topic_prefix, "rr/");
  EXPECT_FALSE(c.validate_utf8_payload);
  EXPECT_CONTAINS(error_of("max_qos 3\n"), "t.conf:1: max_qos");
  Config f = load("wildcard_subscription_available false\nsubscription_identifier_available false\n"
                  "shared_subscription_available false\n");
  EXPECT_FALSE(f.wildcard_subscription_available);
  EXPECT_FALSE(f.subscription_identifier_available);
  EXPECT_FALSE(f.shared_subscription_available);
}

TEST(Config, BridgeKeysAreRefused) {
  EXPECT_CONTAINS(error_of("connection mybridge\n"), "t.conf:1: connection");
  EXPECT_CONTAINS(error_of("bridge_protocol_version mqttv311\n"), "t.conf:1: bridge_protocol_version");
}

TEST(Config, IncludeDirLoadsConfFilesInAlphabeticalOrder) {
  TempDir d;
  d.write("b.conf", "log_dest file /b\nmax_inflight_messages 7\n");
  d.write("a.conf", "log_dest file /a\nmax_inflight_messages 5\n");
  d.write("10-c.conf", "log_dest file /10-c\n");
  d.write("z.conf", "log_dest file /z\n");
  d.write("notes.txt", "frobnicate 1\n");  // not *.conf: ignored
  std::filesystem::create_directory(d.path / "sub.conf");  // a directory: ignored
  Config c = load("log_dest stderr\ninclude_dir " + d.path.string() + "\nlog_dest stdout\n");
  EXPECT_EQ(c.log_dest, (std::vector<std::string>{"stderr", "file /10-c", "file /a", "file /b", "file /z", "stdout"}));
  EXPECT_EQ(c.max_inflight_messages, 7) << "b.conf loaded after a.conf";
}

TEST(Config, ErrorInIncludedFileNamesThatFile) {
  TempDir d;
  std::string f = d.write("bad.conf", "# first\nallow_anonymous true\nfrobnicate x\n");
  EXPECT_CONTAINS(error_of("include_dir " + d.path.string() + "\n"), f + ":3: frobnicate");
}

TEST(Config, IncludeDirThatDoesNotExistIsAnError) {
  TempDir d;
  EXPECT_CONTAINS(error_of("include_dir " + (d.path / "missing").string() + "\n"), "t.conf:1: include_dir");
}

TEST(Config, LoadFile) {
  TempDir d;
  std::string f = d.write("main.conf", "listener 1999\nallow_anonymous true\n");
  Config c;
  tern::config::load_file(f, c);
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].port, 1999);
  Config c2;
  EXPECT_THROW(tern::config::load_file((d.path / "nope.conf").string(), c2), ConfigError);
}

TEST(Config, EffectiveAllowAnonymousWithoutListenerIsTrue) {
  Config c = load("max_inflight_messages 5\n");
  EXPECT_TRUE(c.effective_allow_anonymous());
}

TEST(Config, EffectiveAllowAnonymousWithListenerDefaultsToFalse) {
  Config c = load("listener 1883\n");
  EXPECT_FALSE(c.effective_allow_anonymous());
  Config p = load("port 1883\n");
  EXPECT_FALSE(p.effective_allow_anonymous());
}

TEST(Config, EffectiveAllowAnonymousWithListenerAndAllowAnonymousTrue) {
  Config c = load("listener 1883\nallow_anonymous true\n");
  EXPECT_TRUE(c.effective_allow_anonymous());
  Config f = load("allow_anonymous false\n");
  EXPECT_FALSE(f.effective_allow_anonymous());
}

TEST(Config, FinalizeAddsLoopbackListenersWhenNoneConfigured) {
  Config c = load("");
  tern::config::finalize(c);
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[0].port, 1883);
  EXPECT_EQ(c.listeners[0].bind_address, "127.0.0.1");
  EXPECT_EQ(c.listeners[1].port, 1883);
  EXPECT_EQ(c.listeners[1].bind_address, "::1");
  EXPECT_EQ(c.log_dest, std::vector<std::string>{"stderr"});
  EXPECT_TRUE(c.effective_allow_anonymous()) << "the default loopback listener allows anonymous clients";
}

TEST(Config, FinalizeKeepsConfiguredListeners) {
  Config c = load("listener 1884 0.0.0.0\nlog_dest stdout\n");
  tern::config::finalize(c);
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].port, 1884);
  EXPECT_EQ(c.listeners[0].bind_address, "0.0.0.0");
  EXPECT_EQ(c.log_dest, std::vector<std::string>{"stdout"});
}

// ---- TLS keys (docs/security.md, "TLS") ----

// finalize()'s ConfigError message for `text`, or "" when it passes.
std::string finalize_error_of(const std::string& text) {
  try {
    Config c = load(text);
    tern::config::finalize(c);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, TlsKeysApplyToTheLastListener) {
  Config c = load("listener 1883\n"
                  "listener 8883 127.0.0.1\ncafile /etc/ca dir/ca.crt\ncapath /etc/ssl/certs\n"
                  "certfile /etc/s.crt\nkeyfile /etc/s.key\ncrlfile /etc/crl.pem\ndhparamfile /etc/dh.pem\n"
                  "tls_version tlsv1.3\nciphers ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384\n"
                  "ciphers_tls1.3 TLS_AES_128_GCM_SHA256\nrequire_certificate true\nuse_identity_as_username true\n"
                  "use_subject_as_username false\n");
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_FALSE(c.listeners[0].tls());
  EXPECT_EQ(c.listeners[0].certfile, "");
  const auto& l = c.listeners[1];
  EXPECT_TRUE(l.tls());
  EXPECT_EQ(l.cafile, "/etc/ca dir/ca.crt") << "a path may contain spaces, as in Mosquitto";
  EXPECT_EQ(l.capath, "/etc/ssl/certs");
  EXPECT_EQ(l.certfile, "/etc/s.crt");
  EXPECT_EQ(l.keyfile, "/etc/s.key");
  EXPECT_EQ(l.crlfile, "/etc/crl.pem");
  EXPECT_EQ(l.dhparamfile, "/etc/dh.pem");
  EXPECT_EQ(l.tls_version, "tlsv1.3");
  EXPECT_EQ(l.ciphers, "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384");
  EXPECT_EQ(l.ciphers_tls13, "TLS_AES_128_GCM_SHA256");
  EXPECT_TRUE(l.require_certificate);
  EXPECT_TRUE(l.use_identity_as_username);
  EXPECT_FALSE(l.use_subject_as_username);
  EXPECT_EQ(finalize_error_of("listener 8883\ncertfile /s.crt\nkeyfile /s.key\ncafile /ca.crt\n"
                              "require_certificate true\nuse_subject_as_username true\n"),
            "");
}

TEST(Config, TlsKeysNeedAListenerAndValidValues) {
  EXPECT_CONTAINS(error_of("certfile /s.crt\n"), "t.conf:1: certfile: must follow a listener line");
  EXPECT_CONTAINS(error_of("listener 8883\ncertfile\n"), "t.conf:2: certfile: expects a path");
  EXPECT_CONTAINS(error_of("listener 8883\nciphers\n"), "t.conf:2: ciphers: expects a cipher list");
  EXPECT_CONTAINS(error_of("listener 8883\ntls_version tlsv1.0\n"), "t.conf:2: tls_version: expects tlsv1.3");
  EXPECT_CONTAINS(error_of("listener 8883\ntls_version TLSv1.2\n"), "t.conf:2: tls_version");
  EXPECT_CONTAINS(error_of("listener 8883\nrequire_certificate yes\n"), "t.conf:2: require_certificate: expects true");
  EXPECT_CONTAINS(error_of("listener 8883\nuse_identity_as_username 1\n"), "t.conf:2: use_identity_as_username");
  EXPECT_CONTAINS(error_of("listener 8883\nuse_subject_as_username\n"), "t.conf:2: use_subject_as_username");
  EXPECT_CONTAINS(error_of("psk_file\n"), "t.conf:1: psk_file: expects a file name");
}

TEST(Config, TlsVersion11IsReadAsTls12WithAWarning) {
  Config c = load("listener 8883\ntls_version tlsv1.1\n");
  EXPECT_EQ(c.listeners[0].tls_version, "tlsv1.1");
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_CONTAINS(c.warnings[0], "t.conf:2: tls_version: TLS 1.1 is deprecated (RFC 8996) and not offered");
}

TEST(Config, PskFileIsGlobalUnlessPerListenerSettings) {
  Config c = load("psk_file /etc/psk one\nlistener 8883\npsk_hint my hint\nuse_identity_as_username true\n");
  EXPECT_EQ(c.psk_file, "/etc/psk one");
  EXPECT_EQ(c.listeners[0].psk_hint, "my hint") << "a hint is free text";
  EXPECT_TRUE(c.listeners[0].tls()) << "psk_hint without certfile makes a PSK listener";
  EXPECT_EQ(c.psk_file_of(&c.listeners[0]), "/etc/psk one");
  EXPECT_EQ(finalize_error_of("psk_file /p\nlistener 8883\npsk_hint h\nuse_identity_as_username true\n"), "");
  Config p = load("per_listener_settings true\npsk_file /global\nlistener 8883\npsk_hint h\npsk_file /own\n"
                  "listener 8884\npsk_hint h2\n");
  EXPECT_EQ(p.psk_file_of(&p.listeners[0]), "/own");
  EXPECT_EQ(p.psk_file_of(&p.listeners[1]), "/global");
}

TEST(Config, FinalizeRefusesTlsMistakesMosquittoWouldRunWith) {
  EXPECT_CONTAINS(finalize_error_of("listener 8883\ncertfile /s.crt\n"),
                  "listener 8883: certfile without keyfile (certificate-based TLS needs both)");
  EXPECT_CONTAINS(finalize_error_of("listener 8883 ::1\nkeyfile /s.key\n"), "listener 8883 ::1: keyfile without certfile");
  for (const char* key : {"cafile /ca.crt", "capath /ca", "crlfile /crl.pem", "dhparamfile /dh.pem",
                          "tls_version tlsv1.2", "ciphers HIGH", "ciphers_tls1.3 TLS_AES_128_GCM_SHA256",
                          "require_certificate true", "use_identity_as_username true", "use_subject_as_username true"}) {
    const std::string name = std::string(key).substr(0, std::string(key).find(' '));
    EXPECT_CONTAINS(finalize_error_of(std::string("listener 1883\n") + key + "\n"),
                    "listener 1883: " + name + " needs a TLS listener (certfile and keyfile, or psk_hint)");
  }
  EXPECT_EQ(finalize_error_of("listener 1883\nrequire_certificate false\nuse_identity_as_username false\n"), "")
      << "false values on a plain listener ask for nothing";
  EXPECT_CONTAINS(finalize_error_of("listener 8883\npsk_hint h\n"), "listener 8883: psk_hint needs psk_file");
  EXPECT_CONTAINS(finalize_error_of("listener 8883\ncertfile /s.crt\nkeyfile /s.key\nrequire_certificate true\n"),
                  "listener 8883: require_certificate needs cafile or capath");
  EXPECT_CONTAINS(finalize_error_of("listener 8883\ncertfile /s.crt\nkeyfile /s.key\nuse_identity_as_username true\n"),
                  "listener 8883: use_identity_as_username needs require_certificate true");
  EXPECT_CONTAINS(finalize_error_of("listener 8883\ncertfile /s.crt\nkeyfile /s.key\nuse_subject_as_username true\n"),
                  "listener 8883: use_subject_as_username needs require_certificate true");
  Config crl = load("listener 8883\ncertfile /s.crt\nkeyfile /s.key\ncrlfile /crl.pem\n");
  tern::config::finalize(crl);
  ASSERT_EQ(crl.warnings.size(), 1u);
  EXPECT_CONTAINS(crl.warnings[0], "listener 8883: crlfile has no effect without require_certificate true");
}

TEST(Config, TlsEngineKeysStayRefused) {
  for (const char* key : {"tls_engine pkcs11", "tls_keyform engine", "tls_engine_kpass_sha1 00"}) {
    EXPECT_CONTAINS(error_of(std::string("listener 8883\n") + key + "\n"), "this Mosquitto option is not supported");
  }
}


// ---------------------------------------------------------------------------------------------------
// Limits and defences (docs/security.md)

TEST(ConfigLimits, DefaultsProtectWithoutGettingInTheWay) {
  Config c = load("");
  EXPECT_EQ(c.max_connect_size, 64u * 1024);
  EXPECT_EQ(c.max_clientid_len, 1024u);
  EXPECT_EQ(c.max_topic_levels, 128u);
  EXPECT_EQ(c.max_topic_length, 65535u);
  EXPECT_EQ(c.max_packet_properties, 128u);
  EXPECT_EQ(c.max_subscriptions, 1000u);
  EXPECT_FALSE(c.messages_rate.on());
  EXPECT_FALSE(c.bytes_rate.on());
  EXPECT_FALSE(c.max_conn_rate.on());
}

TEST(ConfigLimits, SizeAndCountKeys) {
  Config c = load("max_connect_size 8k\nmax_clientid_len 64\nmax_topic_levels 16\nmax_topic_length 256\n"
                  "max_packet_properties 32\nmax_subscriptions 10\n");
  EXPECT_EQ(c.max_connect_size, 8192u);
  EXPECT_EQ(c.max_clientid_len, 64u);
  EXPECT_EQ(c.max_topic_levels, 16u);
  EXPECT_EQ(c.max_topic_length, 256u);
  EXPECT_EQ(c.max_packet_properties, 32u);
  EXPECT_EQ(c.max_subscriptions, 10u);
  Config off = load("max_connect_size 0\nmax_clientid_len 0\nmax_topic_levels 0\nmax_topic_length 0\n"
                    "max_packet_properties 0\nmax_subscriptions 0\n");
  EXPECT_EQ(off.max_connect_size, 0u) << "0: max_packet_size applies";
  EXPECT_EQ(off.max_subscriptions, 0u);
  EXPECT_CONTAINS(error_of("max_connect_size 10\n"), "must be at least 20");
  EXPECT_CONTAINS(error_of("max_clientid_len 65536\n"), "larger than 65535");
  EXPECT_CONTAINS(error_of("max_topic_length 70000\n"), "larger than 65535");
  EXPECT_CONTAINS(error_of("max_topic_levels many\n"), "not a number");
}

TEST(ConfigLimits, RatesInEmqxForm) {
  using namespace std::chrono_literals;
  Config c = load("messages_rate 1000/s\nbytes_rate 10MB/m\n");
  EXPECT_EQ(c.messages_rate.amount, 1000u);
  EXPECT_EQ(c.messages_rate.period, 1s);
  EXPECT_EQ(c.bytes_rate.amount, 10u << 20);
  EXPECT_EQ(c.bytes_rate.period, 60s);
  EXPECT_EQ(load("messages_rate 500/10s\n").messages_rate.period, 10s);
  EXPECT_EQ(load("messages_rate 5/250ms\n").messages_rate.period, 250ms);
  EXPECT_EQ(load("messages_rate 7/h\n").messages_rate.period, 1h);
  EXPECT_EQ(load("messages_rate 7/2d\n").messages_rate.period, 48h);
  EXPECT_EQ(load("messages_rate 20\n").messages_rate, (tern::Rate{20, 1s})) << "a bare number is per second";
  EXPECT_EQ(load("bytes_rate 64k\n").bytes_rate.amount, 65536u);
  EXPECT_EQ(load("bytes_rate 64KiB/s\n").bytes_rate.amount, 65536u);
  EXPECT_EQ(load("bytes_rate 1g/s\n").bytes_rate.amount, 1u << 30);
  EXPECT_EQ(load("bytes_rate 100B/s\n").bytes_rate.amount, 100u);
  EXPECT_FALSE(load("messages_rate 10/s\nmessages_rate infinity\n").messages_rate.on());
  EXPECT_FALSE(load("bytes_rate 0\n").bytes_rate.on());
  EXPECT_CONTAINS(error_of("messages_rate 10/fortnight\n"), "time units ms, s, m, h, d");
  EXPECT_CONTAINS(error_of("messages_rate 10/0s\n"), "must not be 0");
  EXPECT_CONTAINS(error_of("messages_rate 10k/s\n"), "not a number") << "size suffixes are for bytes_rate";
  EXPECT_CONTAINS(error_of("bytes_rate\n"), "expects a rate");
}

TEST(ConfigLimits, MaxConnRateIsPerListenerWithAGlobalDefault) {
  using namespace std::chrono_literals;
  Config c = load("max_conn_rate 100/s\nlistener 1883\nlistener 1884\nmax_conn_rate 5/s\n");
  EXPECT_EQ(c.max_conn_rate, (tern::Rate{100, 1s}));
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.max_conn_rate_of(c.listeners[0]), (tern::Rate{100, 1s})) << "the default before any listener";
  EXPECT_EQ(c.max_conn_rate_of(c.listeners[1]), (tern::Rate{5, 1s}));
  Config off = load("max_conn_rate 100/s\nlistener 1883\nmax_conn_rate 0\n");
  EXPECT_FALSE(off.max_conn_rate_of(off.listeners[0]).on()) << "a listener may switch the default off";
}

}  // namespace
