// Annotated wire examples of every MQTT 3.1.1 control packet (§3), each paired with the value it decodes to.
//
// The table depends only on the public API of MQTTCodec and not on XCTest, so any test target (core, server,
// conformance) can compile this one file to reuse it. Every fixture is canonical: encoding `packet` gives
// exactly `bytes`, and decoding `bytes` gives `packet`.

import MQTTCodec

struct PacketFixture: Sendable {
    /// What the example shows, with the spec statement it illustrates where there is one.
    let name: String
    let bytes: [UInt8]
    let packet: Packet
}

/// Concatenates annotated chunks: one chunk per wire field keeps each comment next to its bytes.
func wire(_ chunks: [UInt8]...) -> [UInt8] {
    chunks.flatMap { $0 }
}

/// The UTF-8 bytes of a string, for readable field contents.
func utf8(_ string: String) -> [UInt8] {
    Array(string.utf8)
}

/// Builds a topic name or filter a fixture knows to be valid; a typo in the table traps at once.
func topic(_ string: String) -> TopicName {
    guard let name = TopicName(string) else { preconditionFailure("fixture topic \(string) is invalid") }
    return name
}

func filter(_ string: String) -> TopicFilter {
    guard let filter = TopicFilter(string) else { preconditionFailure("fixture filter \(string) is invalid") }
    return filter
}

func id(_ raw: UInt16) -> PacketID {
    guard let id = PacketID(raw) else { preconditionFailure("fixture packet id 0") }
    return id
}

enum PacketFixtures {
    static let all: [PacketFixture] = connect + connack + publish + acknowledgements + subscriptions + heartbeat

    static let connect: [PacketFixture] = [
        PacketFixture(
            name: "CONNECT 3.1.1, client id only, clean session",
            bytes: wire(
                [0x10, 0x0D],  // CONNECT, remaining length 13
                [0x00, 0x04], utf8("MQTT"),  // protocol name
                [0x04],  // protocol level 4 = 3.1.1
                [0x02],  // connect flags: clean session
                [0x00, 0x3C],  // keep alive 60 s
                [0x00, 0x01], utf8("a")  // client identifier
            ),
            packet: .connect(Connect(clientID: "a"))),
        PacketFixture(
            name: "CONNECT with an empty client id: decodes, the core decides [MQTT-3.1.3-6]",
            bytes: wire(
                [0x10, 0x0C],  // CONNECT, remaining length 12
                [0x00, 0x04], utf8("MQTT"), [0x04],  // MQTT 3.1.1
                [0x02],  // clean session
                [0x00, 0x00],  // keep alive off [MQTT-3.1.2-24]
                [0x00, 0x00]  // zero-length client identifier
            ),
            packet: .connect(Connect(keepAlive: 0, clientID: ""))),
        PacketFixture(
            name: "CONNECT with will (QoS 1, retained), user name and binary password, persistent session",
            bytes: wire(
                [0x10, 0x23],  // CONNECT, remaining length 35
                [0x00, 0x04], utf8("MQTT"), [0x04],  // MQTT 3.1.1
                [0xEC],  // user name, password, will retain, will QoS 1, will flag; clean session 0
                [0x01, 0x2C],  // keep alive 300 s
                [0x00, 0x02], utf8("c1"),  // client identifier
                [0x00, 0x03], utf8("w/t"),  // will topic
                [0x00, 0x03], utf8("bye"),  // will message
                [0x00, 0x04], utf8("user"),  // user name
                [0x00, 0x03], [0x00, 0xFF, 0x10]  // password: binary data, not a string
            ),
            packet: .connect(
                Connect(
                    cleanSession: false, keepAlive: 300, clientID: "c1",
                    will: Will(topic: topic("w/t"), payload: utf8("bye"), qos: .atLeastOnce, retain: true),
                    username: "user", password: [0x00, 0xFF, 0x10]))),
        PacketFixture(
            name: "CONNECT 3.1 (MQIsdp, level 3), accepted as mosquitto does",
            bytes: wire(
                [0x10, 0x11],  // CONNECT, remaining length 17
                [0x00, 0x06], utf8("MQIsdp"), [0x03],  // MQTT 3.1
                [0x02],  // clean session
                [0x00, 0x0A],  // keep alive 10 s
                [0x00, 0x03], utf8("abc")  // client identifier
            ),
            packet: .connect(Connect(protocolVersion: .v3_1, keepAlive: 10, clientID: "abc"))),
        PacketFixture(
            name: "CONNECT 3.1.1 from a bridge (level 0x84, mosquitto's try_private)",
            bytes: wire(
                [0x10, 0x0D],  // CONNECT, remaining length 13
                [0x00, 0x04], utf8("MQTT"), [0x84],  // MQTT 3.1.1, bridge bit
                [0x00],  // clean session 0, as mosquitto bridges connect by default
                [0x00, 0x3C],  // keep alive 60 s
                [0x00, 0x01], utf8("b")  // client identifier
            ),
            packet: .connect(Connect(cleanSession: false, clientID: "b", isBridge: true))),
        PacketFixture(
            name: "CONNECT 3.1 from a bridge (MQIsdp, level 0x83)",
            bytes: wire(
                [0x10, 0x0F],  // CONNECT, remaining length 15
                [0x00, 0x06], utf8("MQIsdp"), [0x83],  // MQTT 3.1, bridge bit
                [0x02],  // clean session
                [0x00, 0x0A],  // keep alive 10 s
                [0x00, 0x01], utf8("b")  // client identifier
            ),
            packet: .connect(Connect(protocolVersion: .v3_1, keepAlive: 10, clientID: "b", isBridge: true))),
        PacketFixture(
            name: "CONNECT with a non-ASCII client id, an empty QoS 2 will and a user name alone",
            bytes: wire(
                [0x10, 0x16],  // CONNECT, remaining length 22
                [0x00, 0x04], utf8("MQTT"), [0x04],  // MQTT 3.1.1
                [0x96],  // user name, will QoS 2, will flag, clean session
                [0x00, 0x3C],  // keep alive 60 s
                [0x00, 0x02], [0xC3, 0xA9],  // client identifier "é"
                [0x00, 0x01], utf8("a"),  // will topic
                [0x00, 0x00],  // empty will message
                [0x00, 0x01], utf8("u")  // user name
            ),
            packet: .connect(
                Connect(
                    clientID: "é", will: Will(topic: topic("a"), payload: [], qos: .exactlyOnce, retain: false),
                    username: "u"))),
    ]

    static let connack: [PacketFixture] = [
        PacketFixture(
            name: "CONNACK accepted, session present [MQTT-3.2.2-2]",
            bytes: [0x20, 0x02, 0x01, 0x00],  // CONNACK, length 2, session present, return code 0
            packet: .connack(ConnAck(sessionPresent: true, returnCode: .accepted))),
        PacketFixture(
            name: "CONNACK refused: unacceptable protocol level [MQTT-3.1.2-2]",
            bytes: [0x20, 0x02, 0x00, 0x01],
            packet: .connack(ConnAck(sessionPresent: false, returnCode: .unacceptableProtocolVersion))),
        PacketFixture(
            name: "CONNACK refused: not authorised",
            bytes: [0x20, 0x02, 0x00, 0x05],
            packet: .connack(ConnAck(sessionPresent: false, returnCode: .notAuthorized))),
    ]

    static let publish: [PacketFixture] = [
        PacketFixture(
            name: "PUBLISH QoS 0: no packet identifier",
            bytes: wire(
                [0x30, 0x07],  // PUBLISH, DUP 0, QoS 0, RETAIN 0; remaining length 7
                [0x00, 0x03], utf8("a/b"),  // topic name
                utf8("hi")  // payload: the rest of the packet
            ),
            packet: .publish(Publish(topic: topic("a/b"), payload: utf8("hi")))),
        PacketFixture(
            name: "PUBLISH QoS 0 retained with an empty payload: clears the retained message [MQTT-3.3.1-10]",
            bytes: wire(
                [0x31, 0x05],  // PUBLISH, RETAIN 1; remaining length 5
                [0x00, 0x03], utf8("a/b")  // topic name, zero-length payload
            ),
            packet: .publish(Publish(topic: topic("a/b"), payload: [], retain: true))),
        PacketFixture(
            name: "PUBLISH QoS 1 with packet identifier 10",
            bytes: wire(
                [0x32, 0x08],  // PUBLISH, QoS 1; remaining length 8
                [0x00, 0x03], utf8("a/b"),  // topic name
                [0x00, 0x0A],  // packet identifier 10
                utf8("x")  // payload
            ),
            packet: .publish(Publish(topic: topic("a/b"), payload: utf8("x"), qos: .atLeastOnce, packetID: id(10)))),
        PacketFixture(
            name: "PUBLISH QoS 2, DUP and RETAIN set, packet identifier 65535, binary payload",
            bytes: wire(
                [0x3D, 0x07],  // PUBLISH, DUP 1, QoS 2, RETAIN 1; remaining length 7
                [0x00, 0x01], utf8("t"),  // topic name
                [0xFF, 0xFF],  // packet identifier 65535
                [0x00, 0xFF]  // payload
            ),
            packet: .publish(
                Publish(
                    topic: topic("t"), payload: [0x00, 0xFF], qos: .exactlyOnce, retain: true, dup: true,
                    packetID: id(65535)))),
        PacketFixture(
            name: "PUBLISH to a topic starting with U+FEFF: the BOM is kept [MQTT-1.5.3-3]",
            bytes: wire(
                [0x30, 0x06],  // PUBLISH QoS 0, remaining length 6
                [0x00, 0x04], [0xEF, 0xBB, 0xBF], utf8("t")  // topic "\u{FEFF}t", empty payload
            ),
            packet: .publish(Publish(topic: topic("\u{FEFF}t"), payload: []))),
        PacketFixture(
            name: "PUBLISH to a $SYS topic: a topic name like any other",
            bytes: wire(
                [0x30, 0x15],  // PUBLISH QoS 0, remaining length 21
                [0x00, 0x12], utf8("$SYS/broker/uptime"),  // topic name
                utf8("1")  // payload
            ),
            packet: .publish(Publish(topic: topic("$SYS/broker/uptime"), payload: utf8("1")))),
        PacketFixture(
            name: "PUBLISH with a two-byte remaining length (205 = 0xCD 0x01)",
            bytes: wire(
                [0x30, 0xCD, 0x01],  // PUBLISH QoS 0, remaining length 205
                [0x00, 0x03], utf8("big"),  // topic name
                [UInt8](repeating: 0x61, count: 200)  // payload
            ),
            packet: .publish(Publish(topic: topic("big"), payload: [UInt8](repeating: 0x61, count: 200)))),
        PacketFixture(
            name: "PUBLISH with a three-byte remaining length (16 384 = 0x80 0x80 0x01)",
            bytes: wire(
                [0x30, 0x80, 0x80, 0x01],  // PUBLISH QoS 0, remaining length 16 384
                [0x00, 0x03], utf8("big"),  // topic name
                [UInt8](repeating: 0x62, count: 16_379)  // payload
            ),
            packet: .publish(Publish(topic: topic("big"), payload: [UInt8](repeating: 0x62, count: 16_379)))),
    ]

    static let acknowledgements: [PacketFixture] = [
        PacketFixture(
            name: "PUBACK 1", bytes: [0x40, 0x02, 0x00, 0x01],  // PUBACK, length 2, packet identifier
            packet: .puback(id(1))),
        PacketFixture(name: "PUBREC 0x1234", bytes: [0x50, 0x02, 0x12, 0x34], packet: .pubrec(id(0x1234))),
        PacketFixture(
            name: "PUBREL 0x1234: flags 0b0010 [MQTT-3.6.1-1]", bytes: [0x62, 0x02, 0x12, 0x34],
            packet: .pubrel(id(0x1234))),
        PacketFixture(name: "PUBCOMP 65535", bytes: [0x70, 0x02, 0xFF, 0xFF], packet: .pubcomp(id(65535))),
        PacketFixture(name: "UNSUBACK 9", bytes: [0xB0, 0x02, 0x00, 0x09], packet: .unsuback(id(9))),
    ]

    static let subscriptions: [PacketFixture] = [
        PacketFixture(
            name: "SUBSCRIBE one filter at QoS 1: flags 0b0010 [MQTT-3.8.1-1]",
            bytes: wire(
                [0x82, 0x08],  // SUBSCRIBE, remaining length 8
                [0x00, 0x01],  // packet identifier 1
                [0x00, 0x03], utf8("a/b"),  // topic filter
                [0x01]  // requested QoS 1
            ),
            packet: .subscribe(
                Subscribe(packetID: id(1), requests: [SubscriptionRequest(filter: filter("a/b"), qos: .atLeastOnce)]))),
        PacketFixture(
            name: "SUBSCRIBE three wildcard filters at QoS 0, 1, 2",
            bytes: wire(
                [0x82, 0x15],  // SUBSCRIBE, remaining length 21
                [0x01, 0x02],  // packet identifier 0x0102
                [0x00, 0x01], utf8("#"), [0x00],  // "#" at QoS 0
                [0x00, 0x03], utf8("+/x"), [0x01],  // "+/x" at QoS 1
                [0x00, 0x06], utf8("$SYS/#"), [0x02]  // "$SYS/#" at QoS 2
            ),
            packet: .subscribe(
                Subscribe(
                    packetID: id(0x0102),
                    requests: [
                        SubscriptionRequest(filter: filter("#"), qos: .atMostOnce),
                        SubscriptionRequest(filter: filter("+/x"), qos: .atLeastOnce),
                        SubscriptionRequest(filter: filter("$SYS/#"), qos: .exactlyOnce),
                    ]))),
        PacketFixture(
            name: "SUBACK with every legal return code [MQTT-3.9.3-2]",
            bytes: wire(
                [0x90, 0x06],  // SUBACK, remaining length 6
                [0x01, 0x02],  // packet identifier 0x0102
                [0x00, 0x01, 0x02, 0x80]  // granted QoS 0, 1, 2, failure
            ),
            packet: .suback(
                SubAck(
                    packetID: id(0x0102),
                    returnCodes: [.granted(.atMostOnce), .granted(.atLeastOnce), .granted(.exactlyOnce), .failure]))),
        PacketFixture(
            name: "UNSUBSCRIBE two filters: flags 0b0010 [MQTT-3.10.1-1]",
            bytes: wire(
                [0xA2, 0x0A],  // UNSUBSCRIBE, remaining length 10
                [0x00, 0x09],  // packet identifier 9
                [0x00, 0x03], utf8("a/b"),  // topic filter
                [0x00, 0x01], utf8("#")  // topic filter
            ),
            packet: .unsubscribe(Unsubscribe(packetID: id(9), filters: [filter("a/b"), filter("#")]))),
    ]

    static let heartbeat: [PacketFixture] = [
        PacketFixture(name: "PINGREQ", bytes: [0xC0, 0x00], packet: .pingreq),
        PacketFixture(name: "PINGRESP", bytes: [0xD0, 0x00], packet: .pingresp),
        PacketFixture(name: "DISCONNECT", bytes: [0xE0, 0x00], packet: .disconnect),
    ]
}
