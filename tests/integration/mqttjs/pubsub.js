// MQTT.js over WebSockets against a running broker: a subscriber and a publisher exchange messages
// at QoS 0, 1 and 2 (and, on MQTT 5, user properties and content type), plus one 300 KB message that spans many
// WebSocket frames. Usage: node pubsub.js ws://127.0.0.1:PORT 4|5
// Prints one line per check and exits 0 when all passed, 1 otherwise (10 s limit).
'use strict';
const mqtt = require('mqtt');

const url = process.argv[2];
const version = Number(process.argv[3] || 4);
const opts = { protocolVersion: version, reconnectPeriod: 0, connectTimeout: 5000 };
const big = Buffer.alloc(300 * 1024, 7);
const expected = [
  { topic: 'js/q0', payload: 'zero', qos: 0 },
  { topic: 'js/q1', payload: 'one', qos: 1 },
  { topic: 'js/q2', payload: 'two', qos: 2 },
  { topic: 'js/big', payload: big, qos: 1 },
];
let failed = false;
const check = (ok, what) => {
  console.log(`${ok ? 'ok' : 'FAIL'} ${what}`);
  if (!ok) failed = true;
};
setTimeout(() => {
  check(false, 'finished within 10 s');
  process.exit(1);
}, 10000);

const sub = mqtt.connect(url, { ...opts, clientId: `js-sub-${version}` });
sub.on('error', (e) => { check(false, `subscriber error ${e.message}`); process.exit(1); });
sub.on('connect', () => {
  sub.subscribe('js/#', { qos: 2 }, (err, granted) => {
    check(!err && granted[0].qos === 2, 'subscribed at QoS 2');
    const pub = mqtt.connect(url, { ...opts, clientId: `js-pub-${version}` });
    pub.on('error', (e) => { check(false, `publisher error ${e.message}`); process.exit(1); });
    pub.on('connect', () => {
      for (const m of expected) {
        const o = { qos: m.qos };
        if (version === 5) o.properties = { userProperties: { k: 'v' }, contentType: 'text/plain' };
        pub.publish(m.topic, m.payload, o, (e) => check(!e, `${m.topic} acknowledged to the publisher`));
      }
    });
    // Each topic once; the order across topics is not fixed (a QoS 2 message is forwarded when the
    // publisher releases it).
    let n = 0;
    const seen = new Set();
    sub.on('message', (topic, payload, packet) => {
      n++;
      const m = expected.find((e) => e.topic === topic);
      check(m && !seen.has(topic) && Buffer.compare(payload, Buffer.from(m.payload)) === 0 && packet.qos === m.qos,
            `${topic} received once, payload intact (${payload.length} bytes), QoS ${packet.qos}`);
      seen.add(topic);
      if (version === 5) {
        const p = packet.properties || {};
        check(p.userProperties && p.userProperties.k === 'v' && p.contentType === 'text/plain',
              `${topic} properties forwarded`);
      }
      if (n === expected.length) {
        pub.end(false, () => sub.end(false, () => process.exit(failed ? 1 : 0)));
      }
    });
  });
});
