#!/usr/bin/python3
"""Bad input, byte by byte: a table of malformed, out-of-order, abusive and unauthorized inputs, each
run against the real broker and, for comparison, against Debian's mosquitto 2.0.11 (docs/bad-input.md).

Every case is one record of CASES: a name, a group, a protocol version, the exact bytes (or a small
builder of them), what Tern must answer, and what mosquitto answers when that differs. On Tern each
case asserts the answer (the close, with the MQTT 5.0 reason code in CONNACK or DISCONNECT where the
specification gives one), then that a canary client connected at the start of the group still
publishes to and receives from its own subscription (and received nothing the case should not have
forwarded), that the broker process is alive, and that its open file descriptors are back to the
group's baseline within 2 s. Each group runs twice on Tern: a warm-up round, then a measured round
whose growth of the broker's resident memory must stay within RSS_BOUND.

mosquitto runs the same table once; what it does differently is printed as a table, never a failure.

    TERN_BIN=build/dev/tern tests/integration/test_bad_input.py            # everything
    tests/integration/test_bad_input.py 5 8                                # groups 5 and 8 only
    tests/integration/test_bad_input.py --tern-only                        # skip mosquitto
    tests/integration/test_bad_input.py --list                             # print the table
    tests/integration/test_bad_input.py --markdown                         # the table for the docs
"""
import os
import random
import re
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../conformance"))
from ternlib import (DISCONNECT, PINGREQ, PINGRESP, Broker, Client, MosquittoBroker,  # noqa: E402
                     TestCerts, ack, connect, free_port, packet, props, publish, s, subscribe,
                     unsubscribe, varint)
from conflib import (connect5, disconnect5, p_byte, p_str, p_u16, p_u32, p_varint,  # noqa: E402
                     parse_publish, publish5, raw_connect, subscribe5, unsubscribe5)

CLOSE_TIMEOUT = 2.0   # how long a close (or the answer to the probe) may take
QUIET = 0.3           # no packet for this long: the broker has answered what it will answer
FD_SETTLE = 2.0       # open file descriptors must be back at the baseline within this time
CONNECT_TIMEOUT = 1   # Tern's connect_timeout in groups 10 and 12 (mosquitto has no such setting)
TIMER_WAIT = 3.0      # cases closed by a timer (connect_timeout, keep alive 1 s) must be closed by then
# Growth of VmRSS allowed between the end of the warm-up round of a group and the end of the measured
# round. Measured: a one-time rise of about 0.7 MiB in the groups of 13 to 16 cases, 0 to 32 KiB in
# the others. With 12 to 21 cases a group, 2 MiB fails a leak of about 100 to 170 KiB or more per
# case (a kept packet buffer of group 12, a read buffer of max_connect_size); smaller
# leaks are for the sanitizer builds to find. Under AddressSanitizer freed memory waits in a
# quarantine, so the resident size grows with the traffic: scripts/asan-ubsan.sh raises the bound with
# TERN_BAD_INPUT_RSS_BOUND (bytes) and relies on LeakSanitizer at the broker's exit instead.
RSS_BOUND = int(os.environ.get("TERN_BAD_INPUT_RSS_BOUND") or 2 * 1024 * 1024)

GROUPS = {
    1: "framing and remaining length",
    2: "connection state",
    3: "CONNECT fields",
    4: "UTF-8",
    5: "topics and filters",
    6: "PUBLISH and QoS flows",
    7: "SUBSCRIBE and UNSUBSCRIBE",
    8: "MQTT 5.0 properties",
    9: "DISCONNECT and AUTH",
    10: "TLS garbage",
    11: "authentication and ACL abuse",
    12: "resource abuse",
}


class Case:
    """One row of the table.

    send:    bytes, a list of bytes and pauses (float seconds), or a function of the case's context
             (k.t its topic, k.cid its client id) returning one of those.
    expect:  what Tern answers, in the notation run_case() reports: the packets it sends back (CONNACK:86,
             DISCONNECT:81, SUBACK:00,80, PUBACK:87, ...), then `closed`, `open` (the connection
             answers a PINGREQ afterwards) or `stalled` (open, but the PINGREQ gets no answer), then
             `fwd:TOPIC` for each message the canary received because of the case. {t} is the topic.
    mosq:    what mosquitto 2.0.11 answers, when it differs (None: the same as Tern); `A | B` when its
             answer depends on timing.
    setup:   connect - CONNECT (with login) and CONNACK 0 before `send`; raw - nothing before `send`;
             tls-raw - a TCP connection to the TLS listener; tls-handshake - a TLS handshake done;
             tls-connect - TLS, then CONNECT and CONNACK 0.
    probe:   after the broker has gone quiet, send PINGREQ to tell `open` from `closed`; off for cases
             that wait for a timer (keep alive, connect timeout), which a PINGREQ would reset.
    """

    def __init__(self, name, group, version, send, expect, mosq=None, setup="connect", login=None,
                 timeout=CLOSE_TIMEOUT, probe=True, half_close=False, topic=None, why=""):
        self.name, self.group, self.version = name, group, version
        self.send, self.expect, self.mosq = send, expect, mosq
        self.setup, self.login = setup, dict(login or {})
        self.timeout, self.probe, self.half_close = timeout, probe, half_close
        self.topic = topic or f"bi/{name}"
        self.why = why


CASES = []


def case(*args, **kw):
    CASES.append(Case(*args, **kw))


def raw_publish(first, topic, rest=b""):
    return packet(first, s(topic) + rest)


def trickle(data, gap):
    """data one byte at a time, `gap` seconds apart."""
    out = []
    for i in range(len(data)):
        out += [data[i:i + 1], gap]
    return out


def user_props(n):
    return b"".join(b"\x26" + s(f"k{i}") + s("v") for i in range(n))


RNG = random.Random(20261127)
RANDOM_300 = bytes(RNG.getrandbits(8) for _ in range(300))
RANDOM_600 = bytes(RNG.getrandbits(8) for _ in range(600))
RANDOM_32 = bytes(RNG.getrandbits(8) for _ in range(32))

# ---- 1 framing and remaining length ----------------------------------------------------------------
G = 1
case("rl_five_bytes", G, 4, b"\xc0\x80\x80\x80\x80\x01", "closed",
     why="a Remaining Length of five bytes (at most four, 2.2.3)")
case("rl_not_minimal", G, 5,
     lambda k: [bytes([0x30, 0x80 | len(s(k.t) + b"\x00x"), 0x00]) + s(k.t) + b"\x00x"], "DISCONNECT:81 closed",
     why="a PUBLISH whose Remaining Length uses two bytes where one does [MQTT-1.5.5-1]",
     mosq='open fwd:{t}')
case("subscribe_cut_filter", G, 4, bytes.fromhex("8205 0001 0005 61"), "closed",
     why="the Remaining Length ends inside the topic filter")
case("publish_properties_past_end", G, 5, lambda k: [packet(0x30, s(k.t) + b"\x0a\x01")], "DISCONNECT:81 closed",
     why="a Property Length of 10 with one byte left in the packet")
case("connect_rl_zero", G, 4, b"\x10\x00", "closed", setup="raw",
     why="a CONNECT with Remaining Length 0")
case("connect_cut_protocol_name", G, 4, b"\x10\x03\x00\x04M", "closed", setup="raw",
     why="a CONNECT whose Remaining Length ends inside the protocol name")
case("rl_max_value", G, 5, lambda k: [b"\x30\xff\xff\xff\x7f" + s(k.t)], "DISCONNECT:95 closed",
     why="Remaining Length 268,435,455 announced (above max_packet_size): refused from the fixed header",
     mosq='stalled')
case("eof_inside_remaining_length", G, 4, b"\x30\xff", "closed", half_close=True,
     why="the client shuts down its side after the first byte of a Remaining Length")
case("eof_inside_body", G, 4, lambda k: [b"\x30\x20" + s(k.t)[:6]], "closed", half_close=True,
     why="the client shuts down its side in the middle of a PUBLISH")
case("bad_packet_mid_stream", G, 4,
     lambda k: [PINGREQ + PINGREQ + publish(k.t, "before") + b"\x40\x01\x00" + PINGREQ + publish(k.t + "/after", "x")],
     "PINGRESP PINGRESP closed fwd:{t}",
     why="a malformed PUBACK between good packets: what came before is handled, nothing after",
     mosq='PINGRESP closed fwd:{t}')
case("pingreq_with_body", G, 5, b"\xc0\x01\x00", "DISCONNECT:81 closed",
     why="PINGREQ has no variable header or payload",
     mosq='PINGRESP open')
case("disconnect_with_body_v311", G, 4, b"\xe0\x01\x00", "closed",
     why="a 3.1.1 DISCONNECT has Remaining Length 0")
case("pubrel_length_zero", G, 4, b"\x62\x00", "closed",
     why="a PUBREL without its packet identifier")
case("reserved_type_0", G, 5, b"\x00\x00", "DISCONNECT:81 closed",
     why="packet type 0 is reserved (forbidden)",
     mosq='DISCONNECT:82 closed')

# ---- 2 connection state ------------------------------------------------------------------------------
G = 2
case("publish_before_connect", G, 4, lambda k: [publish(k.t, "x")], "closed", setup="raw",
     why="a PUBLISH as the first packet [MQTT-3.1.0-1]")
case("pingreq_before_connect", G, 4, PINGREQ, "closed", setup="raw",
     why="a PINGREQ as the first packet [MQTT-3.1.0-1]")
case("subscribe_before_connect", G, 5, lambda k: [subscribe5(1, [(k.t, 0)])], "closed", setup="raw",
     why="a 5.0 SUBSCRIBE as the first packet [MQTT-3.1.0-1]")
case("disconnect_before_connect", G, 4, DISCONNECT, "closed", setup="raw",
     why="a DISCONNECT as the first packet [MQTT-3.1.0-1]")
case("second_connect_v311", G, 4, lambda k: [connect(k.cid + "x")], "closed",
     why="a second CONNECT on an established connection [MQTT-3.1.0-2]")
case("second_connect_other_version", G, 5, lambda k: [connect(k.cid, version=4)], "DISCONNECT:82 closed",
     why="a 3.1.1 CONNECT on an established 5.0 connection: the answer stays 5.0 [MQTT-3.1.0-2]",
     mosq='closed')
case("pipelined_connects", G, 5, lambda k: [connect5(k.cid) + connect5(k.cid)], "CONNACK:00 DISCONNECT:82 closed",
     setup="raw", why="two CONNECTs in one segment, the second arriving while the first is being accepted",
     mosq='CONNACK:00 closed')
case("connack_from_client", G, 5, b"\x20\x03\x00\x00\x00", "DISCONNECT:82 closed",
     why="a CONNACK sent by the client (it only goes from server to client)",
     mosq='closed')
case("suback_from_client", G, 5, b"\x90\x04\x00\x01\x00\x00", "DISCONNECT:82 closed",
     why="a SUBACK sent by the client",
     mosq='open')
case("pingresp_from_client", G, 5, PINGRESP, "DISCONNECT:82 closed",
     why="a PINGRESP sent by the client",
     mosq='open')
case("unsuback_from_client", G, 4, b"\xb0\x02\x00\x01", "closed",
     why="an UNSUBACK sent by the client",
     mosq='open')
case("publish_after_disconnect", G, 4, lambda k: [DISCONNECT + publish(k.t, "x")], "closed",
     why="nothing after DISCONNECT is read: the PUBLISH in the same segment is not forwarded [MQTT-3.14.4-2]")
case("subscribe_after_disconnect_with_will", G, 5, lambda k: [disconnect5(0x04) + subscribe5(1, [(k.t, 0)])],
     "closed", why="DISCONNECT 0x04 then a SUBSCRIBE in the same segment: no SUBACK")
case("connect_after_disconnect_v31", G, 3, lambda k: [DISCONNECT + connect(k.cid, version=3)], "closed",
     why="a CONNECT after DISCONNECT on the same connection (MQTT 3.1)")

# ---- 3 CONNECT fields --------------------------------------------------------------------------------
G = 3
case("protocol_name_lowercase", G, 4, lambda k: [raw_connect(0x02, s(k.cid), name=b"mqtt")], "closed",
     setup="raw", why="protocol name 'mqtt': not MQTT, the server may close without CONNACK [MQTT-3.1.2-1]")
case("protocol_level_6", G, 4, lambda k: [raw_connect(0x02, s(k.cid), level=6)], "CONNACK:01 closed",
     setup="raw", why="an unsupported protocol level: CONNACK 0x01, then close [MQTT-3.1.2-2]")
case("mqtt_name_level_3", G, 4, lambda k: [raw_connect(0x02, s(k.cid), level=3)], "CONNACK:01 closed",
     setup="raw", why="level 3 belongs to the name MQIsdp, not MQTT")
case("reserved_flag_v311", G, 4, lambda k: [raw_connect(0x03, s(k.cid))], "closed", setup="raw",
     why="the reserved CONNECT flag set [MQTT-3.1.2-3]")
case("will_qos_without_will_v311", G, 4, lambda k: [raw_connect(0x0A, s(k.cid))], "closed", setup="raw",
     why="Will QoS 1 with Will Flag 0 [MQTT-3.1.2-13]")
case("will_qos3_v311", G, 4, lambda k: [raw_connect(0x1E, s(k.cid) + s(k.t) + s("w"))], "closed", setup="raw",
     why="Will QoS 3 [MQTT-3.1.2-14]")
case("will_qos3_v31", G, 3, lambda k: [raw_connect(0x1E, s(k.cid) + s(k.t) + s("w"), name=b"MQIsdp", level=3)],
     "closed", setup="raw", why="Will QoS 3 in MQTT 3.1")
case("password_without_username_v311", G, 4, lambda k: [raw_connect(0x42, s(k.cid) + s("pw"))], "closed",
     setup="raw", why="Password Flag 1 with User Name Flag 0 [MQTT-3.1.2-22]")
case("username_flag_without_field_v311", G, 4, lambda k: [raw_connect(0x82, s(k.cid))], "closed", setup="raw",
     why="User Name Flag 1 and the payload ends after the client id [MQTT-3.1.2-19]")
case("will_flag_without_fields_v311", G, 4, lambda k: [raw_connect(0x06, s(k.cid))], "closed", setup="raw",
     why="Will Flag 1 and no Will Topic or Will Message [MQTT-3.1.2-9]")
case("clientid_empty_persistent_v311", G, 4, lambda k: [raw_connect(0x00, s(""))], "CONNACK:02 closed",
     setup="raw", why="a zero-length client id with Clean Session 0 [MQTT-3.1.3-8]")
case("clientid_v31_over_23", G, 3,
     lambda k: [raw_connect(0x02, s("x" * 24), name=b"MQIsdp", level=3)], "CONNACK:02 closed", setup="raw",
     why="MQTT 3.1 client ids are 1 to 23 characters",
     mosq='CONNACK:00 open')
case("keepalive_truncated", G, 4, b"\x10\x09" + s("MQTT") + b"\x04\x02\x00", "closed", setup="raw",
     why="the CONNECT ends inside the Keep Alive field")
case("trailing_byte_v311", G, 4, lambda k: [packet(0x10, connect(k.cid)[2:] + b"z")], "closed", setup="raw",
     why="a byte after the last field of the CONNECT payload")
case("protocol_name_length_overrun", G, 4, lambda k: [packet(0x10, b"\xff\xff" + b"MQTT\x04\x02\x00\x3c" + s(k.cid))],
     "closed", setup="raw", why="a protocol name length of 65535 inside a short packet")
case("properties_length_overrun_v5", G, 5, lambda k: [packet(0x10, s("MQTT") + b"\x05\x02\x00\x3c\x64" + s(k.cid))],
     "CONNACK:81 closed", setup="raw", why="a CONNECT Property Length of 100 inside a short packet",
     mosq='closed')

# ---- 4 UTF-8 -----------------------------------------------------------------------------------------
G = 4
case("utf8_clientid_ff_v311", G, 4, lambda k: [raw_connect(0x02, s(b"bi\xff"))], "closed", setup="raw",
     why="byte FF in the client id [MQTT-1.5.3-1]")
case("utf8_will_topic_overlong_v311", G, 4, lambda k: [raw_connect(0x06, s(k.cid) + s(b"bi/\xc0\xaf") + s("w"))],
     "closed", setup="raw", why="an overlong '/' (C0 AF) in the will topic [MQTT-1.5.3-1]")
case("utf8_username_nul_v311", G, 4, lambda k: [raw_connect(0x82, s(k.cid) + s(b"u\x00"))], "closed", setup="raw",
     why="U+0000 in the user name [MQTT-1.5.3-2]")
case("utf8_username_truncated_v5", G, 5, lambda k: [connect5(k.cid, username=b"u\xc3")], "CONNACK:81 closed",
     setup="raw", why="a user name ending in the first byte of a two-byte sequence [MQTT-1.5.4-1]",
     mosq='closed')
case("utf8_topic_above_10ffff_v5", G, 5, lambda k: [publish5(k.t.encode() + b"\xf4\x90\x80\x80", "x")],
     "DISCONNECT:81 closed", why="F4 90 80 80 encodes U+110000, beyond Unicode [MQTT-1.5.4-1]")
case("utf8_topic_5byte_v311", G, 4, lambda k: [publish(k.t.encode() + b"\xf8\x88\x80\x80\x80", "x")], "closed",
     why="a five-byte sequence in a topic name [MQTT-1.5.3-1]")
case("utf8_filter_overlong3_v5", G, 5, lambda k: [subscribe5(1, [(k.t.encode() + b"\xe0\x80\xaf", 0)])],
     "DISCONNECT:81 closed", why="a three-byte overlong '/' in a topic filter [MQTT-1.5.4-1]")
case("utf8_unsubscribe_surrogate_v311", G, 4, lambda k: [unsubscribe(1, [k.t.encode() + b"\xed\xbf\xbf"])], "closed",
     why="U+DFFF (a surrogate) in an UNSUBSCRIBE filter [MQTT-1.5.3-1]")
case("utf8_unsubscribe_nul_v5", G, 5, lambda k: [unsubscribe5(1, [k.t.encode() + b"\x00"])], "DISCONNECT:81 closed",
     why="U+0000 in an UNSUBSCRIBE filter [MQTT-1.5.4-2]")
case("utf8_content_type_v5", G, 5, lambda k: [publish5(k.t, "x", props=p_str(0x03, b"\xff"))], "DISCONNECT:81 closed",
     why="byte FF in a Content Type property",
     mosq='closed')
case("utf8_response_topic_nul_v5", G, 5, lambda k: [publish5(k.t, "x", props=p_str(0x08, b"r\x00"))],
     "DISCONNECT:81 closed", why="U+0000 in a Response Topic property",
     mosq='closed')
case("utf8_user_property_key_v5", G, 5, lambda k: [connect5(k.cid, props=b"\x26" + s(b"\xc0\x80") + s("v"))],
     "CONNACK:81 closed", setup="raw", why="an overlong U+0000 as a CONNECT User Property name [MQTT-1.5.7-1]",
     mosq='closed')
case("utf8_disconnect_reason_string_v5", G, 5, disconnect5(0, p_str(0x1F, b"\xed\xa0\x80")), "DISCONNECT:81 closed",
     why="U+D800 in the Reason String of the client's DISCONNECT",
     mosq='closed')
case("utf8_auth_method_v5", G, 5, lambda k: [connect5(k.cid, props=p_str(0x15, b"\xfe"))], "CONNACK:81 closed",
     setup="raw", why="byte FE in an Authentication Method",
     mosq='closed')
case("utf8_will_content_type_v5", G, 5,
     lambda k: [connect5(k.cid, will=(k.t, "w", 0, False), will_props=p_str(0x03, b"\x80"))], "CONNACK:81 closed",
     setup="raw", why="a lone continuation byte in the will's Content Type",
     mosq='closed')
case("utf8_share_name_v5", G, 5, lambda k: [subscribe5(1, [(b"$share/\xff/" + k.t.encode(), 0)])],
     "DISCONNECT:81 closed", why="byte FF in a shared subscription's share name")
case("utf8_control_character_topic_v311", G, 4, lambda k: [publish(k.t, "x")], "open fwd:{t}",
     topic="bi/ctl\x01", why="U+0001 is well-formed (a SHOULD NOT; a receiver MAY close): Tern forwards it",
     mosq='closed')
case("utf8_noncharacter_topic_v5", G, 5, lambda k: [publish5(k.t, "x")], "open fwd:{t}", topic="bi/non\uffff",
     why="U+FFFF is well-formed (a SHOULD NOT): forwarded",
     mosq='DISCONNECT:81 closed')

# ---- 5 topics and filters ----------------------------------------------------------------------------
G = 5
case("publish_sys_qos1_v311", G, 4, lambda k: [publish("$SYS/bi/x", "x", qos=1, packet_id=1)], "PUBACK:00 open",
     why="$SYS is the broker's: acknowledged and dropped (3.1.1 has no refusal code) [MQTT-3.3.5-2]")
case("publish_sys_qos1_v5", G, 5, lambda k: [publish5("$SYS/bi/x", "x", qos=1, pid=1)], "PUBACK:87 open",
     why="$SYS is the broker's: PUBACK 0x87 Not authorized")
case("publish_sys_retained_qos0_v311", G, 4, lambda k: [publish("$SYS/bi/retained", "x", retain=True)], "open",
     why="a retained QoS 0 message on $SYS: dropped silently, nothing stored")
case("publish_plus_in_topic_v5", G, 5, lambda k: [publish5(k.t + "/+/x", "x")], "DISCONNECT:90 closed",
     why="'+' in a topic name [MQTT-3.3.2-2]: Topic Name invalid",
     mosq='DISCONNECT:82 closed')
case("publish_hash_mid_topic_v311", G, 4, lambda k: [publish(k.t + "/#/x", "x")], "closed",
     why="'#' inside a topic name [MQTT-3.3.2-2]")
case("publish_hash_only_v5", G, 5, lambda k: [publish5("#", "x", qos=1, pid=1)], "DISCONNECT:90 closed",
     why="the topic name '#' [MQTT-3.3.2-2]",
     mosq='DISCONNECT:82 closed')
case("publish_empty_topic_qos2_v311", G, 4, lambda k: [publish("", "x", qos=2, packet_id=1)], "closed",
     why="a zero-length topic name at QoS 2 [MQTT-4.7.3-1]: closed, no PUBREC")
case("publish_empty_topic_no_alias_v5", G, 5, lambda k: [publish5("", "x")], "DISCONNECT:82 closed",
     why="a zero-length topic name without a Topic Alias (3.3.2.1): Protocol Error")
case("publish_empty_levels_v311", G, 4, lambda k: [publish(k.t, "x")], "open fwd:{t}", topic="/bi//empty/",
     why="empty levels are valid, unlike an empty topic (4.7.1.1): forwarded")
case("subscribe_hash_not_last_v311", G, 4, lambda k: [subscribe(1, [(k.t + "/#/x", 0)])], "closed",
     why="'#' not last in a filter [MQTT-4.7.1-2]")
case("subscribe_hash_glued_v5", G, 5, lambda k: [subscribe5(1, [(k.t + "#", 0)])], "SUBACK:8f open",
     why="'#' not a whole level [MQTT-4.7.1-2]: that filter gets 0x8F Topic Filter invalid",
     mosq='DISCONNECT:81 closed')
case("subscribe_plus_glued_second_v311", G, 4, lambda k: [subscribe(1, [(k.t, 1), (k.t + "+/x", 1)])], "closed",
     why="'+' not a whole level [MQTT-4.7.1-3], in the second filter: no SUBACK for the first either")
case("subscribe_empty_filter_second_v5", G, 5, lambda k: [subscribe5(1, [(k.t, 1), ("", 1)])], "SUBACK:01,8f open",
     why="a zero-length topic filter [MQTT-4.7.3-1] after a good one: 0x8F for it, the first is granted",
     mosq='DISCONNECT:81 closed')
case("subscribe_share_without_filter_qos2_v5", G, 5, lambda k: [subscribe5(1, [("$share/g", 2)])],
     "SUBACK:8f open", why="'$share/NAME' with no filter after it [MQTT-4.8.2-2]: 0x8F",
     mosq='SUBACK:02 open')
case("subscribe_share_empty_name_subid_v5", G, 5,
     lambda k: [subscribe5(1, [("$share//" + k.t, 0)], props=p_varint(0x0B, 7))],
     "SUBACK:8f open", why="an empty share name [MQTT-4.8.2-1], with a Subscription Identifier: 0x8F",
     mosq='SUBACK:00 open')
case("subscribe_share_wildcard_name_v311", G, 4, lambda k: [subscribe(1, [("$share/g#/" + k.t, 0)])],
     "SUBACK:80 open", why="'#' in a share name [MQTT-4.8.2-2]: 3.1.1 shares 5.0's $share, and refuses it with 0x80",
     mosq='closed')
case("subscribe_share_no_local_v5", G, 5, lambda k: [subscribe5(1, [("$share/g/" + k.t, 0x04)])],
     "DISCONNECT:82 closed", why="No Local on a shared subscription [MQTT-3.8.3-4]",
     mosq='SUBACK:00 open')
case("unsubscribe_hash_not_last_v311", G, 4, lambda k: [unsubscribe(1, [k.t + "/#/x"])], "closed",
     why="an UNSUBSCRIBE filter with '#' not last")
case("publish_share_topic_v5", G, 5, lambda k: [publish5("$share/g/" + k.t, "x", qos=1, pid=1)], "PUBACK:10 open",
     why="'$share/...' is an ordinary topic name when published (no wildcard): accepted, no subscriber",
     mosq='PUBACK:87 open')

# ---- 6 PUBLISH and QoS flows -------------------------------------------------------------------------
G = 6
case("qos2_packet_id_0_v5", G, 5, lambda k: [publish5(k.t, "x", qos=2, pid=0)], "DISCONNECT:81 closed",
     why="QoS 2 with packet identifier 0 [MQTT-2.2.1-3]",
     mosq='DISCONNECT:82 closed')
case("qos1_packet_id_0_v31", G, 3, lambda k: [publish(k.t, "x", qos=1, packet_id=0)], "closed",
     why="QoS 1 with packet identifier 0 (MQTT 3.1)")
case("qos3_v5", G, 5, lambda k: [raw_publish(0x36, k.t, b"\x00\x01\x00x")], "DISCONNECT:81 closed",
     why="QoS 3 [MQTT-3.3.1-4]")
case("qos3_dup_v31", G, 3, lambda k: [raw_publish(0x3E, k.t, b"\x00\x01x")], "closed",
     why="QoS 3 with DUP (MQTT 3.1)")
case("dup_on_qos0_v5", G, 5, lambda k: [raw_publish(0x38, k.t, b"\x00x")], "DISCONNECT:81 closed",
     why="DUP 1 on a QoS 0 PUBLISH [MQTT-3.3.1-2]",
     mosq='open fwd:{t}')
case("pubrel_unknown_id_v311", G, 4, ack("pubrel", 77), "PUBCOMP:00 open",
     why="PUBREL for an id never received: PUBCOMP anyway [MQTT-4.3.3-2]")
case("pubrel_unknown_id_v5", G, 5, ack("pubrel", 78), "PUBCOMP:92 open",
     why="PUBREL for an id never received: PUBCOMP 0x92 Packet Identifier not found",
     mosq='PUBCOMP:00 open')
case("pubrel_flags_0000_v5", G, 5, b"\x60\x02\x00\x01", "DISCONNECT:81 closed",
     why="PUBREL with fixed-header flags 0000 instead of 0010 [MQTT-3.6.1-1]",
     mosq='closed')
case("pubrel_flags_0011_v311", G, 4, b"\x63\x02\x00\x01", "closed",
     why="PUBREL with fixed-header flags 0011 [MQTT-3.6.1-1]")
case("qos2_resent_before_pubrel_v311", G, 4,
     lambda k: [publish(k.t, "x", qos=2, packet_id=7), 0.1, publish(k.t, "x", qos=2, packet_id=7, dup=True), 0.1,
                ack("pubrel", 7)],
     "PUBREC:00 PUBREC:00 PUBCOMP:00 open fwd:{t}",
     why="a QoS 2 PUBLISH sent again (DUP) before PUBREL: acknowledged again, delivered once [MQTT-4.3.3-2]")
case("qos1_reuses_unreleased_qos2_id_v5", G, 5,
     lambda k: [publish5(k.t, "x", qos=2, pid=8), 0.1, publish5(k.t + "/q1", "y", qos=1, pid=8), 0.1,
                ack("pubrel", 8)],
     "PUBREC:00 PUBACK:91 PUBCOMP:00 open fwd:{t}",
     why="a QoS 1 PUBLISH reusing the id of an unreleased QoS 2 one: 0x91 Packet Identifier in use",
     mosq='PUBREC:00 PUBACK:00 PUBCOMP:00 open fwd:{t}/q1')
case("puback_unknown_id_v5", G, 5, b"\x40\x02\x00\x63", "open",
     why="PUBACK for an id the server never used: ignored")
case("pubrec_unknown_id_v5", G, 5, b"\x50\x02\x00\x64", "PUBREL:92 open",
     why="PUBREC for an id the server never used: PUBREL 0x92 Packet Identifier not found",
     mosq='PUBREL:00 open')
case("pubcomp_unknown_id_v311", G, 4, b"\x70\x02\x00\x65", "open",
     why="PUBCOMP for an id the server never used: ignored")
case("receive_maximum_exceeded_v5", G, 5,
     lambda k: [b"".join(publish5(k.t, "x", qos=2, pid=i) for i in range(1, 7))],
     "PUBREC:00*5 DISCONNECT:93 closed",
     why="six unreleased QoS 2 PUBLISHes with receive_maximum 5 [MQTT-3.3.4-7]: 0x93",
     mosq='PUBREC:00*5 PUBREC:97 open')
case("qos1_without_room_for_id_v311", G, 4, lambda k: [raw_publish(0x32, k.t)], "closed",
     why="a QoS 1 PUBLISH that ends after its topic: no packet identifier")
case("pubrel_invalid_reason_v5", G, 5,
     lambda k: [publish5(k.t, "x", qos=2, pid=9), 0.1, b"\x62\x03\x00\x09\x05"], "PUBREC:00 DISCONNECT:82 closed",
     why="PUBREL with reason code 0x05, not a PUBREL reason code [MQTT-3.6.2-1]: Protocol Error",
     mosq='PUBREC:00 PUBCOMP:00 open fwd:{t}')

# ---- 7 SUBSCRIBE and UNSUBSCRIBE ----------------------------------------------------------------------
G = 7
case("subscribe_no_filters_v5", G, 5, b"\x82\x03\x00\x01\x00", "DISCONNECT:82 closed",
     why="a SUBSCRIBE without a topic filter [MQTT-3.8.3-2]",
     mosq='DISCONNECT:81 closed')
case("unsubscribe_no_filters_v5", G, 5, b"\xa2\x03\x00\x01\x00", "DISCONNECT:82 closed",
     why="an UNSUBSCRIBE without a topic filter [MQTT-3.10.3-2]",
     mosq='DISCONNECT:81 closed')
case("subscribe_flags_1010_v5", G, 5, lambda k: [bytes([0x8A]) + subscribe5(1, [(k.t, 0)])[1:]],
     "DISCONNECT:81 closed", why="SUBSCRIBE fixed-header flags 1010 instead of 0010 [MQTT-3.8.1-1]")
case("unsubscribe_flags_0011_v5", G, 5, lambda k: [bytes([0xA3]) + unsubscribe5(1, [k.t])[1:]],
     "DISCONNECT:81 closed", why="UNSUBSCRIBE fixed-header flags 0011 [MQTT-3.10.1-1]")
case("subscribe_packet_id_0_v5", G, 5, lambda k: [subscribe5(0, [(k.t, 0)])], "DISCONNECT:81 closed",
     why="SUBSCRIBE with packet identifier 0 [MQTT-2.2.1-3]")
case("unsubscribe_packet_id_0_v5", G, 5, lambda k: [unsubscribe5(0, [k.t])], "DISCONNECT:81 closed",
     why="UNSUBSCRIBE with packet identifier 0 [MQTT-2.2.1-3]")
case("subscribe_options_reserved_bits_v5", G, 5, lambda k: [subscribe5(1, [(k.t, 0xC0)])], "DISCONNECT:81 closed",
     why="subscription options bits 6 and 7 set [MQTT-3.8.3-5]")
case("subscribe_retain_handling_3_second_v5", G, 5,
     lambda k: [subscribe5(1, [(k.t, 0), (k.t + "/2", 0x30)])], "DISCONNECT:82 closed",
     why="Retain Handling 3 on the second filter: the whole SUBSCRIBE is refused",
     mosq='DISCONNECT:81 closed')
case("subscribe_qos3_v5", G, 5, lambda k: [subscribe5(1, [(k.t, 0x03)])], "DISCONNECT:82 closed",
     why="Maximum QoS 3 in the subscription options",
     mosq='DISCONNECT:81 closed')
case("subscribe_options_missing_v311", G, 4, lambda k: [packet(0x82, b"\x00\x01" + s(k.t))], "closed",
     why="a topic filter without its options byte")
case("unsubscribe_filter_truncated_v5", G, 5, lambda k: [packet(0xA2, b"\x00\x01\x00" + b"\x00\x20" + b"bi/")],
     "DISCONNECT:81 closed", why="an UNSUBSCRIBE filter length of 32 with 3 bytes left")
case("unsubscribe_trailing_byte_v311", G, 4, lambda k: [packet(0xA2, unsubscribe(1, [k.t])[2:] + b"\x00")], "closed",
     why="one stray byte after the last UNSUBSCRIBE filter")
case("subscribe_properties_only_v5", G, 5, packet(0x82, b"\x00\x01" + props(p_varint(0x0B, 5))),
     "DISCONNECT:82 closed", why="a Subscription Identifier and no topic filter",
     mosq='DISCONNECT:81 closed')

# ---- 8 MQTT 5.0 properties ---------------------------------------------------------------------------
G = 8
case("prop_duplicate_payload_format", G, 5, lambda k: [publish5(k.t, "x", props=p_byte(1, 0) + p_byte(1, 1))],
     "DISCONNECT:82 closed", why="Payload Format Indicator twice (3.3.2.3.2): Protocol Error",
     mosq='closed')
case("prop_session_expiry_in_publish", G, 5, lambda k: [publish5(k.t, "x", props=p_u32(0x11, 5))],
     "DISCONNECT:81 closed", why="Session Expiry Interval is not a PUBLISH property")
case("prop_unknown_identifier", G, 5, lambda k: [publish5(k.t, "x", props=b"\x7f\x00")], "DISCONNECT:81 closed",
     why="property identifier 0x7F does not exist")
case("prop_length_overrun_subscribe", G, 5, lambda k: [packet(0x82, b"\x00\x01\x32" + p_varint(0x0B, 1))],
     "DISCONNECT:81 closed", why="a SUBSCRIBE Property Length of 50 with 2 bytes left")
case("prop_string_length_overrun", G, 5, lambda k: [publish5(k.t, "", props=b"\x03\x00\x64abc")],
     "DISCONNECT:81 closed", why="a Content Type of announced length 100 with 3 bytes left in the properties")
case("topic_alias_zero", G, 5, lambda k: [publish5(k.t, "x", props=p_u16(0x23, 0))], "DISCONNECT:94 closed",
     why="Topic Alias 0 [MQTT-3.3.2-8]",
     mosq='DISCONNECT:81 closed')
case("topic_alias_above_maximum", G, 5, lambda k: [publish5(k.t, "x", props=p_u16(0x23, 11))],
     "DISCONNECT:94 closed", why="Topic Alias 11 with a Topic Alias Maximum of 10 [MQTT-3.3.2-9]")
case("topic_alias_unknown_empty_topic", G, 5, lambda k: [publish5("", "x", props=p_u16(0x23, 3))],
     "DISCONNECT:82 closed", why="an empty topic with an alias never set")
case("subscription_identifier_zero", G, 5, lambda k: [subscribe5(1, [(k.t, 0)], props=p_varint(0x0B, 0))],
     "DISCONNECT:82 closed", why="Subscription Identifier 0 is a Protocol Error",
     mosq='DISCONNECT:81 closed')
case("subscription_identifier_in_publish", G, 5, lambda k: [publish5(k.t, "x", props=p_varint(0x0B, 5))],
     "DISCONNECT:82 closed", why="a client's PUBLISH carries no Subscription Identifier [MQTT-3.3.4-6]",
     mosq='open fwd:{t}')
case("receive_maximum_zero", G, 5, lambda k: [connect5(k.cid, props=p_u16(0x21, 0))], "CONNACK:82 closed",
     setup="raw", why="Receive Maximum 0 in CONNECT",
     mosq='closed')
case("maximum_packet_size_zero", G, 5, lambda k: [connect5(k.cid, props=p_u32(0x27, 0))], "CONNACK:82 closed",
     setup="raw", why="Maximum Packet Size 0 in CONNECT",
     mosq='closed')
case("request_problem_information_2", G, 5, lambda k: [connect5(k.cid, props=p_byte(0x17, 2))],
     "CONNACK:82 closed", setup="raw", why="Request Problem Information 2 (0 or 1 only)",
     mosq='closed')
case("payload_format_indicator_2", G, 5, lambda k: [publish5(k.t, "x", props=p_byte(0x01, 2))],
     "DISCONNECT:82 closed", why="Payload Format Indicator 2 (0 or 1 only)",
     mosq='open fwd:{t}')
case("user_property_without_value", G, 5, lambda k: [publish5(k.t, "", props=b"\x26" + s("k"))],
     "DISCONNECT:81 closed", why="a User Property with a name and no value")
case("subscription_identifier_5_byte_varint", G, 5,
     lambda k: [subscribe5(1, [(k.t, 0)], props=b"\x0b\x80\x80\x80\x80\x01")], "DISCONNECT:81 closed",
     why="a Variable Byte Integer of five bytes")
case("will_property_topic_alias", G, 5,
     lambda k: [connect5(k.cid, will=(k.t, "w", 0, False), will_props=p_u16(0x23, 1))], "CONNACK:81 closed",
     setup="raw", why="Topic Alias is not a will property",
     mosq='closed')
case("response_topic_wildcard", G, 5, lambda k: [publish5(k.t, "x", props=p_str(0x08, "r/+"))],
     "DISCONNECT:82 closed", why="a Response Topic with a wildcard [MQTT-3.3.2-14]",
     mosq='open fwd:{t}')
case("correlation_data_twice", G, 5,
     lambda k: [publish5(k.t, "x", qos=1, pid=3, props=p_str(0x09, b"a") + p_str(0x09, b"b"))],
     "DISCONNECT:82 closed", why="Correlation Data twice",
     mosq='closed')
case("authentication_data_without_method", G, 5, lambda k: [connect5(k.cid, props=p_str(0x16, b"x"))],
     "CONNACK:82 closed", setup="raw", why="Authentication Data without an Authentication Method",
     mosq='CONNACK:00 open')
case("subscription_identifier_in_unsubscribe", G, 5, lambda k: [unsubscribe5(1, [k.t], props=p_varint(0x0B, 1))],
     "DISCONNECT:81 closed", why="Subscription Identifier is not an UNSUBSCRIBE property")

# ---- 9 DISCONNECT and AUTH ---------------------------------------------------------------------------
G = 9
WILL = {"will": True}  # CONNECT with a will on the case's topic: published means the server saw an error
case("disconnect_reason_0x03", G, 5, b"\xe0\x01\x03", "DISCONNECT:82 closed fwd:{t}", login=WILL,
     why="0x03 is not a DISCONNECT reason code [MQTT-3.14.2-1]: an error, so the will is published",
     mosq='closed')
case("disconnect_error_reason_keeps_will", G, 5, b"\xe0\x01\x80", "closed fwd:{t}", login=WILL,
     why="DISCONNECT 0x80 (Unspecified error) is not 0x00: the will stays and is published [MQTT-3.1.2-8]",
     mosq='closed')
case("disconnect_session_expiry_from_zero", G, 5, disconnect5(0, p_u32(0x11, 100)), "DISCONNECT:82 closed fwd:{t}",
     login=WILL, why="CONNECT had Session Expiry 0, DISCONNECT sets 100: Protocol Error (3.14.2.2.2), will published")
case("disconnect_server_reference", G, 5, disconnect5(0, p_str(0x1C, "elsewhere")), "closed", login=WILL,
     why="a Server Reference in the client's DISCONNECT 0x00: a normal disconnect, the will is discarded")
case("disconnect_reason_string_twice", G, 5, disconnect5(0, p_str(0x1F, "a") + p_str(0x1F, "b")),
     "DISCONNECT:82 closed fwd:{t}", login=WILL, why="Reason String twice: Protocol Error, will published",
     mosq='closed fwd:{t}')
case("disconnect_properties_overrun", G, 5, b"\xe0\x02\x00\x05", "DISCONNECT:81 closed fwd:{t}", login=WILL,
     why="a DISCONNECT Property Length of 5 with nothing after it: Malformed Packet, will published",
     mosq='closed fwd:{t}')
case("auth_continue_without_method", G, 5, b"\xf0\x02\x18\x00", "DISCONNECT:82 closed",
     why="AUTH 0x18 when CONNECT had no Authentication Method (section 4.12)",
     mosq='closed')
case("auth_empty", G, 5, b"\xf0\x00", "DISCONNECT:82 closed",
     why="an AUTH with no body (reason 0x00) outside an authentication exchange",
     mosq='closed')
case("auth_reauthenticate_without_method", G, 5, b"\xf0\x02\x19\x00", "DISCONNECT:82 closed",
     why="re-authentication (0x19) when CONNECT had no Authentication Method",
     mosq='closed')
case("auth_invalid_reason", G, 5, b"\xf0\x02\x05\x00", "DISCONNECT:82 closed",
     why="AUTH reason code 0x05 does not exist",
     mosq='closed')
case("auth_flags_0001", G, 5, b"\xf1\x00", "DISCONNECT:81 closed",
     why="AUTH fixed-header flags 0001",
     mosq='closed')
case("auth_on_v31", G, 3, b"\xf0\x02\x18\x00", "closed",
     why="packet type 15 on an MQTT 3.1 connection")
case("connect_unknown_auth_method", G, 5, lambda k: [connect5(k.cid, props=p_str(0x15, "NO-SUCH-METHOD"))],
     "CONNACK:8c closed", setup="raw", why="an Authentication Method the server does not support: 0x8C")

# ---- 10 TLS garbage ------------------------------------------------------------------------------------
G = 10


def client_hello(tls10=False):
    """The first bytes of a TLS handshake as this Python sends them."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    if tls10:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


HELLO = client_hello()
SSLV2_HELLO = b"\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10" + bytes(range(21)) + bytes(16)

case("tls_random_bytes", G, 0, RANDOM_300, "closed", setup="tls-raw", why="300 random bytes")
case("tls_plain_mqtt_connect", G, 0, lambda k: [connect(k.cid)], "closed", setup="tls-raw",
     why="a plain MQTT CONNECT to the TLS port")
case("tls_http_request", G, 0, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", "closed", setup="tls-raw",
     why="an HTTP request to the TLS port")
case("tls_truncated_hello_then_wait", G, 0, HELLO[:len(HELLO) // 2], "closed", setup="tls-raw", timeout=TIMER_WAIT,
     why="half a ClientHello, then silence: closed by connect_timeout (1 s)",
     mosq='open')
case("tls_truncated_hello_then_eof", G, 0, HELLO[:len(HELLO) // 2], "closed", setup="tls-raw", half_close=True,
     why="half a ClientHello, then the client shuts down its side")
case("tls_oversized_record", G, 0, b"\x16\x03\x01\xff\xff" + RANDOM_600, "closed", setup="tls-raw",
     why="a handshake record announcing 65535 bytes (above 2^14 + 2048)")
case("tls_empty_handshake_record", G, 0, b"\x16\x03\x01\x00\x00", "closed", setup="tls-raw", timeout=TIMER_WAIT,
     why="a zero-length handshake record",
     mosq='open')
case("tls_sslv2_hello", G, 0, SSLV2_HELLO, "closed", setup="tls-raw",
     why="an SSL 2.0 ClientHello")
case("tls_alert_first", G, 0, b"\x15\x03\x03\x00\x02\x02\x28", "closed", setup="tls-raw",
     why="a fatal alert before any handshake")
case("tls_change_cipher_spec_first", G, 0, b"\x14\x03\x03\x00\x01\x01", "closed", setup="tls-raw",
     why="ChangeCipherSpec before the ClientHello")
case("tls_1_0_only_hello", G, 0, client_hello(tls10=True), "closed", setup="tls-raw",
     why="a ClientHello offering TLS 1.0 only (the listener takes 1.2 and 1.3)")
case("tls_garbage_after_handshake", G, 0, b"\x17\x03\x03\x00\x20" + RANDOM_32, "closed", setup="tls-handshake",
     why="after the handshake, an application-data record that does not decrypt")
case("tls_plaintext_after_handshake", G, 0, lambda k: [connect(k.cid)], "closed", setup="tls-handshake",
     why="after the handshake, a plain-text CONNECT")
case("tls_handshake_then_silence", G, 0, b"", "closed", setup="tls-handshake", timeout=TIMER_WAIT, probe=False,
     why="a TLS handshake and no CONNECT: closed by connect_timeout (1 s)",
     mosq='open')
case("tls_mqtt_reserved_type", G, 4, b"\x00\x00", "closed", setup="tls-connect",
     why="over an established TLS connection, packet type 0")

# ---- 11 authentication and ACL abuse -----------------------------------------------------------------
G = 11
ALICE = {"username": "alice", "password": "secret1"}
BOB = {"username": "bob", "password": "secret2"}
PLUS = {"username": "+", "password": "plus1"}
case("wrong_password_v311", G, 4, lambda k: [connect(k.cid, username="alice", password="wrong")],
     "CONNACK:04 closed", setup="raw", why="a wrong password: CONNACK 4",
     mosq='CONNACK:05 closed')
case("unknown_user_v31", G, 3, lambda k: [connect(k.cid, version=3, username="mallory", password="secret1")],
     "CONNACK:04 closed", setup="raw", why="a user not in the password file (MQTT 3.1): CONNACK 4",
     mosq='CONNACK:05 closed')
case("anonymous_refused_v31", G, 3, lambda k: [connect(k.cid, version=3)], "CONNACK:05 closed", setup="raw",
     why="no user name with allow_anonymous false: CONNACK 5")
case("username_hash_without_password_v5", G, 5, lambda k: [connect5(k.cid, username="#")], "CONNACK:86 closed",
     setup="raw", why="the user name '#' (which no password file can hold) and no password",
     mosq='CONNACK:87 closed')
case("username_without_password_v311", G, 4, lambda k: [connect(k.cid, username="bob")], "CONNACK:04 closed",
     setup="raw", why="a known user without a password",
     mosq='CONNACK:05 closed')
case("other_users_password_v5", G, 5, lambda k: [connect5(k.cid, username="bob", password="secret1")],
     "CONNACK:86 closed", setup="raw", why="bob with alice's password",
     mosq='CONNACK:87 closed')
case("clientid_hash_pattern_subscribe", G, 4, lambda k: [subscribe(1, [("devices/#", 0)])], "SUBACK:80 open",
     login=dict(BOB, client_id="#"),
     why="client id '#' must not turn 'pattern readwrite devices/%c/#' into devices/#/#",
     mosq='SUBACK:00 open')
case("clientid_plus_pattern_publish_v5", G, 5, lambda k: [publish5("devices/x/t", "x", qos=1, pid=1)],
     "PUBACK:87 open", login=dict(BOB, client_id="+"),
     why="client id '+' must not turn devices/%c/# into devices/+/#")
case("clientid_slash_pattern_publish_qos0_v5", G, 5, lambda k: [publish5("devices/a/b/t", "x")],
     "open", login=dict(BOB, client_id="a/b"),
     why="client id 'a/b' must not reach into client a's devices/a/...: dropped (QoS 0), not forwarded",
     mosq='open fwd:devices/a/b/t')
case("username_plus_pattern_subscribe_v5", G, 5, lambda k: [subscribe5(1, [("users/+/#", 0)])], "SUBACK:87 open",
     login=dict(PLUS), why="user name '+' must not turn 'pattern readwrite users/%u/#' into users/+/#",
     mosq='SUBACK:00 open')
case("username_plus_pattern_publish_v311", G, 4, lambda k: [publish("users/alice/inbox", "x", qos=1, packet_id=1)],
     "PUBACK:00 open", login=dict(PLUS),
     why="user '+' writing to users/alice/...: acknowledged (3.1.1) and not forwarded")
case("sys_publish_by_reader_v5", G, 5, lambda k: [publish5("$SYS/bi/x", "x", qos=1, pid=1)], "PUBACK:87 open",
     login=dict(ALICE), why="alice may read $SYS/#; nobody writes it")
case("subscribe_beyond_acl_v5", G, 5, lambda k: [subscribe5(1, [("canary/#", 0)])], "SUBACK:87 open",
     login=dict(BOB), why="bob may read only bob/#",
     mosq='SUBACK:00 open')
case("shared_subscribe_beyond_acl_v311", G, 4, lambda k: [subscribe(1, [("$share/g/canary/#", 0)])],
     "SUBACK:80 open", login=dict(BOB), why="a shared subscription is judged by its filter",
     mosq='SUBACK:00 open')
case("will_on_denied_topic_v311", G, 4,
     lambda k: [connect(k.cid, username="bob", password="secret2", will=("canary/will", "gone", 0, False))],
     "CONNACK:05 closed", setup="raw", why="a will on a topic bob may not write",
     mosq='CONNACK:00 open')

# ---- 12 resource abuse -------------------------------------------------------------------------------
G = 12
case("connect_over_max_connect_size", G, 5, b"\x10" + varint(1 << 20) + s("MQTT") + b"\x05\x02\x00\x3c\x00",
     "CONNACK:95 closed", setup="raw",
     why="a CONNECT announcing 1 MiB (max_connect_size is 64 KiB), not sent: refused from the header",
     mosq='open')
case("publish_announced_not_sent", G, 4, lambda k: [b"\x30" + varint(1 << 20) + s(k.t) + bytes(100)], "closed",
     login={"keepalive": 1}, timeout=TIMER_WAIT, probe=False,
     why="1 MiB announced, 100 bytes sent, keep alive 1 s: closed after 1.5 s [MQTT-3.1.2-24]",
     mosq="open | closed")
case("slowloris_connect", G, 4, lambda k: trickle(connect("slowloris-" + "x" * 30), 0.25), "closed", setup="raw",
     timeout=TIMER_WAIT, probe=False, why="a CONNECT at 4 bytes a second: closed by connect_timeout (1 s)",
     mosq='open')
case("slowloris_publish", G, 4, lambda k: trickle(publish(k.t, "y" * 30), 0.25), "closed",
     login={"keepalive": 1}, timeout=TIMER_WAIT, probe=False,
     why="a PUBLISH at 4 bytes a second with keep alive 1 s: partial packets do not count as activity")
case("no_connect_ever", G, 4, b"", "closed", setup="raw", timeout=TIMER_WAIT, probe=False,
     why="a connection that never sends anything: closed by connect_timeout (1 s)",
     mosq='open')
case("many_properties_publish_v5", G, 5, lambda k: [publish5(k.t, "x", props=user_props(1000))],
     "DISCONNECT:97 closed", why="1000 User Properties in a PUBLISH (max_packet_properties 128)",
     mosq='open fwd:{t}')
case("many_properties_connect_v5", G, 5, lambda k: [connect5(k.cid, props=user_props(300))], "CONNACK:97 closed",
     setup="raw", why="300 User Properties in a CONNECT (max_packet_properties 128)",
     mosq='CONNACK:00 open')
case("deep_topic_publish_v311", G, 4, lambda k: [publish(k.t + "/l" * 200, "x")], "closed",
     why="a topic of 202 levels (max_topic_levels 128)")
case("deep_filter_subscribe_v5", G, 5, lambda k: [subscribe5(1, [(k.t + "/+" * 200, 0)])], "SUBACK:8f open",
     why="a filter of 202 levels (max_topic_levels 128): 0x8F, the filter is not allowed here",
     mosq='DISCONNECT:81 closed')
case("long_clientid_v5", G, 5, lambda k: [connect5("c" * 4096)], "CONNACK:85 closed", setup="raw",
     why="a 4096-byte client id (max_clientid_len 1024)",
     mosq='CONNACK:00 open')
case("many_filters_one_subscribe_v311", G, 4, lambda k: [subscribe(1, [(f"{k.t}/{i}", 0) for i in range(1500)])],
     "SUBACK:00*1000,80*500 open", why="1500 filters in one SUBSCRIBE (max_subscriptions 1000)",
     mosq='SUBACK:00*1500 open')
case("pingreq_flood_v311", G, 4, PINGREQ * 2000, "PINGRESP*2000 open",
     why="2000 PINGREQs in one segment: answered in order, nothing else")


# ---- running -------------------------------------------------------------------------------------------

class Ctx:
    """What a case's builder may use."""

    def __init__(self, c, idx):
        self.t = c.topic
        self.cid = f"bi-{idx}"


def render_topic(t):
    if isinstance(t, bytes):
        t = t.decode("utf-8", "backslashreplace")
    out = "".join(ch if 0x20 <= ord(ch) < 0x7F else f"\\u{ord(ch):04x}" for ch in t)
    return out if len(out) <= 60 else f"{out[:30]}...({len(out)} chars)"


def rle(items, sep):
    out, i = [], 0
    while i < len(items):
        j = i
        while j < len(items) and items[j] == items[i]:
            j += 1
        out += items[i:j] if j - i < 3 else [f"{items[i]}*{j - i}"]
        i = j
    return sep.join(out)


def token(p, version):
    """One packet from the broker, in the table's notation."""
    t = p[0] >> 4
    i = 1
    while p[i] & 0x80:
        i += 1
    body = p[i + 1:]

    def skip_props(b):
        n, shift, length = 0, 0, 0
        while n < len(b):
            length |= (b[n] & 0x7F) << shift
            shift += 7
            n += 1
            if not b[n - 1] & 0x80:
                break
        return b[n + length:]

    if t == 2:
        return f"CONNACK:{body[1]:02x}" if len(body) >= 2 else "CONNACK:?"
    if t in (9, 11):
        rest = body[2:]
        if version == 5:
            rest = skip_props(rest)
        name = "SUBACK" if t == 9 else "UNSUBACK"
        return f"{name}:{rle([f'{x:02x}' for x in rest], ',')}" if rest else name
    if t in (4, 5, 6, 7):
        name = {4: "PUBACK", 5: "PUBREC", 6: "PUBREL", 7: "PUBCOMP"}[t]
        return f"{name}:{body[2] if len(body) > 2 else 0:02x}"
    if t == 14:
        return f"DISCONNECT:{body[0] if body else 0:02x}"
    if t == 15:
        return f"AUTH:{body[0] if body else 0:02x}"
    if t == 13:
        return "PINGRESP"
    if t == 3:
        return "PUBLISH"
    return "?" + p[:4].hex()


class TlsClient(Client):
    """ternlib's raw client over TLS (the test CA is not checked: the broker is the one under test)."""

    def __init__(self, port, timeout=5.0):  # noqa: super().__init__ would open a plain socket
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.buf = b""
        self.timeout = timeout

    def _read_chunk(self, deadline):
        if self.sock.pending():  # decrypted bytes do not make the socket readable
            return self.sock.recv(65536)
        return super()._read_chunk(deadline)


def tls_handshake(port):
    """A TCP socket with a finished TLS handshake, driven by hand so that raw bytes can follow it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            data = outgoing.read()
            if data:
                sock.sendall(data)
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("closed during the TLS handshake")
            incoming.write(chunk)
    data = outgoing.read()
    if data:
        sock.sendall(data)
    return sock


def wait_or_closed(c, seconds):
    """Waits, reading what arrives; True when the broker closed meanwhile."""
    deadline = time.time() + seconds
    try:
        while c._fill(deadline):
            pass
    except EOFError:
        return True
    return False


def raw_observe(sock, timeout):
    """For connections not speaking MQTT (TLS garbage): 'closed' or 'open', and the first bytes."""
    got = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r, _, _ = select.select([sock], [], [], max(0.0, deadline - time.time()))
        if not r:
            break
        try:
            chunk = sock.recv(65536)
        except OSError:
            chunk = b""
        if not chunk:
            return "closed", got
        got += chunk
    return "open", got


def mqtt_observe(c, end, may_probe):
    """Reads what the broker answers until `end`: (packets, state)."""
    got = []
    end = max(end, time.time() + QUIET)
    try:
        if not may_probe(got):
            while time.time() < end:
                p = c.recv(max(0.01, end - time.time()))
                if p is None:
                    break
                got.append(p)
            return got, "open"
        while True:
            p = c.recv(QUIET)
            if p is None or time.time() > end:
                break
            got.append(p)
        if not may_probe(got):
            return mqtt_observe_rest(c, got, end)
        try:
            c.send(PINGREQ)
        except OSError:
            raise EOFError
        deadline = time.time() + CLOSE_TIMEOUT
        while time.time() < deadline:
            p = c.recv(max(0.01, deadline - time.time()))
            if p is None:
                break
            if p == PINGRESP:
                return got, "open"
            got.append(p)
        return got, "stalled"
    except EOFError:
        return got, "closed"


def mqtt_observe_rest(c, got, end):
    try:
        while time.time() < end:
            p = c.recv(max(0.01, end - time.time()))
            if p is None:
                break
            got.append(p)
        return got, "open"
    except EOFError:
        return got, "closed"


class Target:
    """One broker under test (Tern or mosquitto) for one group, with its canary."""

    def __init__(self, kind, group, files):
        self.kind, self.group, self.files = kind, group, files
        self.start()

    def start(self):
        g = self.group
        if self.kind == "tern":
            conf = ""
            if g == 6:
                conf += "receive_maximum 5\n"
            if g in (10, 12):
                conf += f"connect_timeout {CONNECT_TIMEOUT}\n"
            if g == 10:
                conf += ("allow_anonymous true\nlistener 0 127.0.0.1\nlistener 0 127.0.0.1\n"
                         f"certfile {self.files['cert']}\nkeyfile {self.files['key']}\n")
            if g == 11:
                conf += (f"allow_anonymous false\npassword_file {self.files['passwd']}\n"
                         f"acl_file {self.files['acl']}\n")
            self.b = Broker(conf)
            self.port = self.tls_port = self.b.port
            if g == 10:  # the plain listener, then the TLS one
                deadline = time.time() + 5
                while len(ports := re.findall(r"Opening ipv4 listen socket on port (\d+)\.", self.b.log())) < 2:
                    assert time.time() < deadline, "tern's TLS listener did not open:\n" + self.b.log()
                    time.sleep(0.05)
                self.port, self.tls_port = int(ports[0]), int(ports[1])
        else:
            conf = ""
            if g == 6:
                conf += "max_inflight_messages 5\n"
            if g == 10:
                self.tls_port = free_port()
                conf += (f"listener {self.tls_port} 127.0.0.1\ncertfile {self.files['cert']}\n"
                         f"keyfile {self.files['key']}\n")
            if g == 11:
                conf += (f"allow_anonymous false\npassword_file {self.files['passwd']}\n"
                         f"acl_file {self.files['acl']}\n")
            self.b = MosquittoBroker(conf)
            self.port = self.b.port
            if g == 10:
                deadline = time.time() + 5
                while True:
                    try:
                        socket.create_connection(("127.0.0.1", self.tls_port), timeout=0.2).close()
                        break
                    except OSError:
                        assert time.time() < deadline, "mosquitto's TLS listener did not open"
                        time.sleep(0.05)
        self.pid = self.b.proc.pid
        self.canary = None
        self.new_canary()

    def new_canary(self):
        if self.canary:
            self.canary.close()
        if self.group == 10:
            c = TlsClient(self.tls_port)
        else:
            c = Client(self.port)
        login = ALICE if self.group == 11 else {}
        c.send(connect("canary", **login))
        got = c.recv(timeout=3)
        assert got == bytes([0x20, 2, 0, 0]), f"{self.kind}: canary CONNACK {got.hex() if got else got}"
        c.send(subscribe(1, [("#", 0), ("$SYS/bi/#", 0)]))
        got = c.recv(timeout=3)
        assert got and got[0] == 0x90, f"{self.kind}: canary SUBACK {got.hex() if got else got}"
        while c.recv(timeout=0.2) is not None:  # retained messages of an earlier round
            pass
        self.canary, self.ping_n = c, 0
        time.sleep(0.1)
        self.fd_baseline = self.fds()

    def alive(self):
        return self.b.proc.poll() is None

    def fds(self):
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            return -1

    def rss(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def fds_settle(self):
        """True when the open descriptors are back at the baseline within FD_SETTLE."""
        deadline = time.time() + FD_SETTLE
        while True:
            n = self.fds()
            if n <= self.fd_baseline:
                return True, n
            if time.time() > deadline:
                return False, n
            time.sleep(0.02)

    def ping(self):
        """The canary publishes to itself; returns (ok, topics of other messages it received)."""
        self.ping_n += 1
        payload = f"ping {self.ping_n}".encode()
        fwd = []
        try:
            self.canary.send(publish("canary/ping", payload))
            deadline = time.time() + 3
            while True:
                p = self.canary.recv(max(0.01, deadline - time.time()))
                if p is None:
                    return False, fwd
                if p[0] >> 4 != 3:
                    continue
                d = parse_publish(p, 4)
                if d["topic"] == b"canary/ping" and d["payload"] == payload:
                    return True, fwd
                fwd.append(d["topic"])
        except (EOFError, OSError):
            return False, fwd

    def stop(self):
        if self.canary:
            self.canary.close()
        self.b.stop()


def open_connection(target, cs, idx):
    """The case's connection after its setup: (Client or socket, error)."""
    if cs.setup == "tls-raw":
        return socket.create_connection(("127.0.0.1", target.tls_port), timeout=5), None
    if cs.setup == "tls-handshake":
        try:
            return tls_handshake(target.tls_port), None
        except (OSError, EOFError) as e:
            return None, f"setup: TLS handshake failed ({e})"
    if cs.setup == "tls-connect":
        c = TlsClient(target.tls_port)
    else:
        c = Client(target.port)
    if cs.setup in ("connect", "tls-connect"):
        login = dict(cs.login)
        cid = login.pop("client_id", f"bi-{idx}")
        if login.get("will") is True:
            login["will"] = (cs.topic, "will", 0, False)
        if cs.group == 11 and "username" not in login:
            login.update(BOB)
        c.send(connect(cid, version=cs.version, **login))
        try:
            p = c.recv(timeout=CLOSE_TIMEOUT)
        except EOFError:
            p = None
        if p is None or p[0] != 0x20 or token(p, cs.version) != "CONNACK:00":
            c.close()
            return None, f"setup: {token(p, cs.version) if p else 'no CONNACK'}"
    return c, None


def send_items(conn, items, is_client, end):
    """Sends the case's bytes, pausing where asked, until `end`; True when the broker closed meanwhile."""
    sock = conn.sock if is_client else conn
    for it in items:
        if time.time() > end:
            return False
        if isinstance(it, (int, float)):
            if is_client and wait_or_closed(conn, it):
                return True
            if not is_client:
                time.sleep(it)
            continue
        if not it:
            continue
        try:
            sock.sendall(it)
        except OSError:
            return True
    return False


def run_case(target, cs, idx):
    """Runs one case; returns (outcome, problems)."""
    conn, err = open_connection(target, cs, idx)
    if err:
        return err, []
    k = Ctx(cs, idx)
    items = cs.send(k) if callable(cs.send) else cs.send
    if isinstance(items, (bytes, bytearray)):
        items = [bytes(items)]
    is_client = isinstance(conn, Client)
    end = time.time() + cs.timeout  # the whole case, sending included
    send_items(conn, items, is_client, end)
    sock = conn.sock if is_client else conn
    if cs.half_close:
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    detail = ""
    if is_client:
        connected = cs.setup in ("connect", "tls-connect")

        def may_probe(got):
            if not cs.probe or cs.half_close:
                return False
            return connected or any(token(p, cs.version) == "CONNACK:00" for p in got)
        got, state = mqtt_observe(conn, end, may_probe)
        tokens = [token(p, cs.version) for p in got]
    else:
        state, raw = raw_observe(sock, max(QUIET, end - time.time()))
        tokens = []
        alert = ", a TLS alert" if raw[:1] == b"\x15" else ""
        detail = f" ({len(raw)} bytes back{alert})" if raw else ""
    try:
        sock.close()
    except OSError:
        pass
    problems = []
    settled, n = target.fds_settle()
    if not settled:
        problems.append(f"open fds {n} > baseline {target.fd_baseline} after {FD_SETTLE:.0f} s")
    ok, fwd = target.ping()
    if not ok:
        problems.append("the canary did not receive its own message")
    if not target.alive():
        problems.append("the broker died")
    outcome = " ".join([rle(tokens, " "), state] + [f"fwd:{render_topic(t)}" for t in fwd]).strip()
    return outcome + detail, problems


def expected(cs, text):
    return text.replace("{t}", render_topic(cs.topic))


def make_files(d):
    files = {}
    certs = TestCerts(d, san="DNS:localhost,IP:127.0.0.1")
    files["cert"], files["key"] = certs.server, certs.server_key
    passwd = os.path.join(d, "passwd")
    subprocess.run(["mosquitto_passwd", "-c", "-b", passwd, "alice", "secret1"], check=True)
    subprocess.run(["mosquitto_passwd", "-b", passwd, "bob", "secret2"], check=True)
    subprocess.run(["mosquitto_passwd", "-b", passwd, "+", "plus1"], check=True)
    acl = os.path.join(d, "acl")
    with open(acl, "w") as f:
        f.write("user alice\ntopic read #\ntopic read $SYS/#\ntopic readwrite canary/#\n\n"
                "user bob\ntopic readwrite bob/#\n\n"
                "user +\ntopic readwrite plus/#\n\n"
                "pattern readwrite devices/%c/#\npattern readwrite users/%u/#\n")
    for p in (passwd, acl):
        os.chmod(p, 0o644)
    files["passwd"], files["acl"] = passwd, acl
    return files


def run_group(kind, g, cases, files, rounds, log):
    """Runs a group's cases `rounds` times on one broker; returns ({case name: [(outcome, problems) per
    round]}, notes)."""
    target = Target(kind, g, files)
    notes, results, rss = [], {}, []
    try:
        for r in range(rounds):
            if r:
                target.new_canary()
            for idx, cs in cases:
                outcome, problems = run_case(target, cs, idx)
                results.setdefault(cs.name, []).append((outcome, problems))
                if kind == "tern":
                    want = expected(cs, cs.expect)
                    same = outcome.split(" (")[0] == want
                    if not same or problems or r == rounds - 1:
                        log(f"{'PASS' if same and not problems else 'FAIL'} [{g:2}] {cs.name} (v{cs.version}, "
                            f"round {r + 1}): {outcome}" + ("" if same else f"   expected: {want}")
                            + "".join(f"; {p}" for p in problems))
                if not target.alive():
                    notes.append(f"{kind} died in case {cs.name}; restarted")
                    log(f"     {kind} died in case {cs.name}:\n" + target.b.log()[-2000:])
                    target.stop()
                    target = Target(kind, g, files)
            time.sleep(0.3)  # let the last closes finish before sampling
            if target.alive():
                rss.append(target.rss())
        while target.canary.recv(timeout=0.1) is not None:
            pass
    finally:
        target.stop()
    if len(rss) >= 2:
        notes.append(("rss", rss[-1] - rss[-2], rss))
    return results, notes


def main():
    args = [a for a in sys.argv[1:]]
    if "--markdown" in args:  # the table as docs/bad-input.md shows it
        versions = {0: "TLS", 3: "3.1", 4: "3.1.1", 5: "5.0"}
        for g, title in GROUPS.items():
            print(f"\n### {g}. {title}\n")
            print("| case | version | input | Tern answers |")
            print("|---|---|---|---|")
            for cs in CASES:
                if cs.group == g:
                    cell = lambda t: t.replace("|", "\\|").replace("{t}", "T")  # noqa: E731
                    print(f"| `{cs.name}` | {versions[cs.version]} | {cell(cs.why)} | {cell(cs.expect)} |")
        return 0
    if "--list" in args:
        for i, cs in enumerate(CASES):
            print(f"{cs.group:2} {cs.name:42} v{cs.version} {cs.setup:13} tern: {cs.expect:36} "
                  f"mosquitto: {cs.mosq or '(same)'}")
        print(f"{len(CASES)} cases")
        return 0
    tern_only = "--tern-only" in args
    groups = sorted({int(a) for a in args if a.isdigit()}) or sorted(GROUPS)
    names = [cs.name for cs in CASES]
    assert len(names) == len(set(names)), "case names must be unique"
    for g in GROUPS:
        n = sum(1 for cs in CASES if cs.group == g)
        assert n >= 8, f"group {g} has only {n} cases"

    tmp = tempfile.mkdtemp(prefix="tern-bad-input-")
    os.chmod(tmp, 0o755)  # the brokers read these files after dropping privileges
    files = make_files(tmp)
    indexed = list(enumerate(CASES))
    failures, diffs, stale, rss_fail, summary = [], [], [], [], []
    start = time.time()
    lines = []

    def log(text):
        print(text, flush=True)
        lines.append(text)

    try:
        for g in groups:
            cases = [(i, cs) for i, cs in indexed if cs.group == g]
            t0 = time.time()
            tern, notes = run_group("tern", g, cases, files, 2, log)
            for n in notes:
                if isinstance(n, tuple):
                    growth, rss = n[1], n[2]
                    ok = growth <= RSS_BOUND
                    log(f"{'PASS' if ok else 'FAIL'} [{g:2}] memory: VmRSS {rss[0] // 1024} KiB after the warm-up round, "
                        f"{rss[1] // 1024} KiB after the measured round ({growth / 1024:+.0f} KiB, bound "
                        f"{RSS_BOUND // 1024} KiB)")
                    if not ok:
                        rss_fail.append((g, growth))
                else:
                    log("     " + n)
                    failures.append((g, "(broker)", n))
            for _, cs in cases:
                want = expected(cs, cs.expect)
                for r, (outcome, problems) in enumerate(tern[cs.name]):
                    if outcome.split(" (")[0] != want or problems:
                        failures.append((g, cs.name, f"round {r + 1}: {outcome}; expected {want}"
                                         + "".join(f"; {p}" for p in problems)))
                        break
            t1 = time.time()
            mosq = {}
            if not tern_only:
                mosq, mnotes = run_group("mosquitto", g, cases, files, 1, lambda _: None)
                for n in mnotes:
                    if not isinstance(n, tuple):
                        log("     " + n)
                for _, cs in cases:
                    outcome, problems = mosq[cs.name][0]
                    seen = outcome.split(" (")[0]
                    want_tern = expected(cs, cs.expect)
                    want_mosq = expected(cs, cs.mosq) if cs.mosq else want_tern
                    if seen != want_tern or problems:
                        diffs.append((g, cs, want_tern, outcome + "".join(f"; {p}" for p in problems)))
                    if seen not in want_mosq.split(" | "):
                        stale.append((g, cs.name, want_mosq, outcome))
            summary.append((g, len(cases), t1 - t0, time.time() - t1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print("| group | cases | Tern (2 rounds) | mosquitto (1 round) |")
    print("|---|---|---|---|")
    for g, n, tt, mt in summary:
        print(f"| {g} {GROUPS[g]} | {n} | {tt:.1f} s | {mt:.1f} s |")
    print(f"| total | {sum(x[1] for x in summary)} | | {time.time() - start:.0f} s in all |")
    if not tern_only:
        print()
        print(f"Differences from mosquitto 2.0.11 ({len(diffs)} of {sum(x[1] for x in summary)} cases):")
        print()
        print("| group | case | version | Tern | mosquitto 2.0.11 |")
        print("|---|---|---|---|---|")
        for g, cs, want, seen in diffs:
            v = {0: "TLS", 3: "3.1", 4: "3.1.1", 5: "5.0"}[cs.version]
            print(f"| {g} | {cs.name} | {v} | {want} | {seen} |")
        if stale:
            print()
            print("mosquitto did not do what the table says it does (update the table's mosq column):")
            for g, name, want, seen in stale:
                print(f"  [{g}] {name}: table says {want!r}, observed {seen!r}")
    print()
    for g, growth in rss_fail:
        print(f"FAIL memory, group {g}: VmRSS grew {growth / 1024:.0f} KiB in the measured round")
    for g, name, text in failures:
        print(f"FAIL [{g}] {name}: {text}")
    bad = len(failures) + len(rss_fail)
    print(f"{sum(x[1] for x in summary) - len({f[1] for f in failures})} cases passed on Tern, "
          f"{len({f[1] for f in failures})} failed; {len(rss_fail)} memory failures")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
