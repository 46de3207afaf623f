#!/usr/bin/python3
"""MQTT 5.0 features through Debian's paho-mqtt (a real third-party client) against the real broker:
properties forwarded unchanged and in order, message expiry reduced by the wait, subscription options
(no local, retain as published, retain handling), subscription identifiers on overlapping
subscriptions, session expiry, Request Response Information and Assigned Client Identifier."""
import os
import queue
import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

sys.path.insert(0, os.path.dirname(__file__))
from ternlib import Broker, run_tests  # noqa: E402

BROKER = None


class V5:
    """A connected paho client that queues what it receives."""

    def __init__(self, client_id, clean=True, props=None):
        self.msgs = queue.Queue()
        self.connack = queue.Queue()
        self.c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
        self.c.on_message = lambda c, u, m: self.msgs.put(m)
        self.c.on_connect = lambda c, u, flags, rc, p: self.connack.put((flags, rc, p))
        self.c.on_subscribe = lambda c, u, mid, codes, p: self.subacks.put(codes)
        self.subacks = queue.Queue()
        self.c.connect("127.0.0.1", BROKER.port, 60, clean_start=clean, properties=props)
        self.c.loop_start()
        self.flags, self.rc, self.props = self.connack.get(timeout=5)
        assert self.rc.value == 0, self.rc

    def sub(self, topic, qos=1, props=None, **opts):
        self.c.subscribe(topic, options=SubscribeOptions(qos=qos, **opts), properties=props)
        return self.subacks.get(timeout=5)

    def get(self, timeout=3.0):
        return self.msgs.get(timeout=timeout)

    def none(self, timeout=0.7):
        try:
            m = self.msgs.get(timeout=timeout)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected message on {m.topic}: {m.payload!r}")

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def pub_props(**kw):
    p = Properties(PacketTypes.PUBLISH)
    for k, v in kw.items():
        setattr(p, k, v)
    return p


def test_properties_forwarded_unchanged_and_in_order():
    s = V5("pv5-sub")
    s.sub("pv5/props")
    p = V5("pv5-pub")
    props = pub_props(ContentType="application/json", ResponseTopic="pv5/reply", CorrelationData=b"\x00\x01corr",
                      PayloadFormatIndicator=1,
                      UserProperty=[("b", "2"), ("a", "1"), ("b", "3")])
    p.c.publish("pv5/props", '{"x": 1}', qos=1, properties=props).wait_for_publish(5)
    m = s.get()
    assert m.payload == b'{"x": 1}'
    assert m.properties.ContentType == "application/json"
    assert m.properties.ResponseTopic == "pv5/reply"
    assert m.properties.CorrelationData == b"\x00\x01corr"
    assert m.properties.PayloadFormatIndicator == 1
    assert m.properties.UserProperty == [("b", "2"), ("a", "1"), ("b", "3")], "order and repeats kept"
    s.close()
    p.close()


def test_message_expiry_reduced_by_the_wait():
    p = V5("exp-pub")
    p.c.publish("exp/r", "kept", qos=1, retain=True,
                properties=pub_props(MessageExpiryInterval=60)).wait_for_publish(5)
    p.c.publish("exp/short", "gone", qos=1, retain=True,
                properties=pub_props(MessageExpiryInterval=1)).wait_for_publish(5)
    time.sleep(2.2)
    s = V5("exp-sub")
    s.sub("exp/#")
    m = s.get()
    assert m.topic == "exp/r", "the message with 1 s expiry has expired"
    assert 55 <= m.properties.MessageExpiryInterval <= 58, m.properties.MessageExpiryInterval
    s.none()
    p.close()
    s.close()


def test_no_local():
    a = V5("nl-a")
    b = V5("nl-b")
    a.sub("nl/t", noLocal=True)
    b.sub("nl/t")
    a.c.publish("nl/t", "from a", qos=1).wait_for_publish(5)
    assert b.get().payload == b"from a"
    a.none()
    a.close()
    b.close()


def test_retain_as_published_and_retain_handling():
    p = V5("rap-pub")
    keep = V5("rap-keep")
    clear = V5("rap-clear")
    keep.sub("rap/t", retainAsPublished=True)
    clear.sub("rap/t", retainAsPublished=False)
    p.c.publish("rap/t", "r", qos=1, retain=True).wait_for_publish(5)
    assert keep.get().retain == 1, "Retain As Published keeps RETAIN [MQTT-3.3.1-13]"
    assert clear.get().retain == 0, "otherwise a live message has RETAIN 0 [MQTT-3.3.1-12]"
    never = V5("rh-never")
    never.sub("rap/t", retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)
    never.none()
    once = V5("rh-once")
    once.sub("rap/t", retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
    assert once.get().retain == 1
    once.sub("rap/t", retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
    once.none()  # not new: nothing sent again
    always = V5("rh-always")
    always.sub("rap/t")
    assert always.get().retain == 1
    always.sub("rap/t")
    assert always.get().retain == 1, "retain handling 0 sends on every SUBSCRIBE [MQTT-3.8.4-3]"
    p.c.publish("rap/t", "", qos=1, retain=True).wait_for_publish(5)
    for c in (p, keep, clear, never, once, always):
        c.close()


def test_subscription_identifiers_on_overlap():
    s = V5("sid-sub")
    p1 = Properties(PacketTypes.SUBSCRIBE)
    p1.SubscriptionIdentifier = 11
    s.sub("sid/#", qos=0, props=p1)
    p2 = Properties(PacketTypes.SUBSCRIBE)
    p2.SubscriptionIdentifier = 22
    s.sub("sid/+", qos=1, props=p2)
    p = V5("sid-pub")
    p.c.publish("sid/x", "both", qos=1).wait_for_publish(5)
    m = s.get()
    assert sorted(m.properties.SubscriptionIdentifier) == [11, 22], m.properties.SubscriptionIdentifier
    assert m.qos == 1, "one copy at the highest granted QoS [MQTT-3.3.4-2]"
    s.none()
    s.close()
    p.close()


def test_session_expiry_keeps_then_ends_the_session():
    cp = Properties(PacketTypes.CONNECT)
    cp.SessionExpiryInterval = 2
    s = V5("sx-sub", clean=True, props=cp)
    s.sub("sx/t")
    s.close()
    p = V5("sx-pub")
    p.c.publish("sx/t", "queued", qos=1).wait_for_publish(5)
    s2 = V5("sx-sub", clean=False, props=cp)
    assert s2.flags["session present"] == 1
    assert s2.get().payload == b"queued"
    s2.close()
    time.sleep(3.5)  # past the 2 s expiry (checked on the worker's 1 s tick)
    s3 = V5("sx-sub", clean=False, props=cp)
    assert s3.flags["session present"] == 0, "the session expired"
    s3.close()
    p.close()


def test_response_information_and_assigned_client_id():
    cp = Properties(PacketTypes.CONNECT)
    cp.RequestResponseInformation = 1
    c = V5("", props=cp)
    assigned = c.props.AssignedClientIdentifier
    assert assigned.startswith("auto-"), assigned
    assert c.props.ResponseInformation == "response/" + assigned
    c.close()


if __name__ == "__main__":
    with Broker("") as b:
        BROKER = b
        run_tests([
            test_properties_forwarded_unchanged_and_in_order,
            test_message_expiry_reduced_by_the_wait,
            test_no_local,
            test_retain_as_published_and_retain_handling,
            test_subscription_identifiers_on_overlap,
            test_session_expiry_keeps_then_ends_the_session,
            test_response_information_and_assigned_client_id,
        ])
