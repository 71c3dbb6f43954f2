// mqtt.js (Debian's node-mqtt) against a WebSocket listener: connect, subscribe, publish QoS 1 and receive the
// message back. Usage: node ws_mqttjs.js URL TOPIC USER PASSWORD [CA_FILE]. Exit status 0 when it all worked.
'use strict';
const fs = require('fs');
const mqtt = require('mqtt');

const [url, topic, username, password, caFile] = process.argv.slice(2);
const options = { username, password, clientId: 'mqttjs-' + process.pid, reconnectPeriod: 0, connectTimeout: 8000 };
if (caFile) {
    options.ca = fs.readFileSync(caFile);
    options.rejectUnauthorized = true;
}
const fail = (why) => {
    console.error('mqtt.js: ' + why);
    process.exit(1);
};
const timer = setTimeout(() => fail('no echo within 9 s'), 9000);
const client = mqtt.connect(url, options);
client.on('error', (error) => fail(String(error)));
client.on('close', () => {
    if (!client.disconnecting) fail('connection closed');
});
client.on('connect', () => {
    client.subscribe(topic, { qos: 1 }, (error, granted) => {
        if (error || !granted || granted[0].qos !== 1) return fail('subscribe: ' + (error || JSON.stringify(granted)));
        client.publish(topic, 'from mqtt.js', { qos: 1 }, (publishError) => {
            if (publishError) fail('publish: ' + publishError);
        });
    });
});
client.on('message', (received, payload) => {
    if (received !== topic || payload.toString() !== 'from mqtt.js') return fail('unexpected message on ' + received);
    clearTimeout(timer);
    client.end(false, () => {
        console.log('mqtt.js round trip over ' + url.split(':')[0] + ' ok');
        process.exit(0);
    });
});
