// Every way a frame can be refused, with the exact error, named by the statement it enforces (§2.2, §3, §4.8).

import MQTTCodec
import XCTest

struct MalformedCase {
    let name: String
    let bytes: [UInt8]
    let error: DecodeError
    var limit = 268_435_455
}

/// The body of a 3.1.1 CONNECT up to and including the connect flags.
func connectHead(flags: UInt8) -> [UInt8] {
    wire([0x00, 0x04], utf8("MQTT"), [0x04], [flags])
}

/// A whole CONNECT with the right remaining length around `body` (which must stay under 128 bytes).
func connectPacket(_ body: [UInt8]) -> [UInt8] {
    wire([0x10, UInt8(body.count)], body)
}

private func malformed(_ reason: String) -> DecodeError { .malformed(reason) }

enum MalformedCases {
    static let fixedHeader: [MalformedCase] = [
        MalformedCase(
            name: "packet type 0 is reserved [MQTT-4.8.0-1]", bytes: [0x00, 0x00],
            error: malformed("packet type 0 is reserved (§2.2.1)")),
        MalformedCase(
            name: "packet type 15 is reserved [MQTT-4.8.0-1]", bytes: [0xF0, 0x00],
            error: malformed("packet type 15 is reserved (§2.2.1)")),
        MalformedCase(
            name: "MQTT-2.2.2-2 PUBACK 0x41", bytes: [0x41, 0x02, 0x00, 0x01],
            error: malformed("PUBACK with reserved flags 0x1 [MQTT-2.2.2-2]")),
        MalformedCase(
            name: "MQTT-2.2.2-2 PUBCOMP 0x72", bytes: [0x72, 0x02, 0x00, 0x01],
            error: malformed("PUBCOMP with reserved flags 0x2 [MQTT-2.2.2-2]")),
        MalformedCase(
            name: "MQTT-2.2.2-2 PINGREQ 0xC1", bytes: [0xC1, 0x00],
            error: malformed("PINGREQ with reserved flags 0x1 [MQTT-2.2.2-2]")),
        MalformedCase(
            name: "MQTT-2.2.2-2 CONNECT 0x11", bytes: [0x11, 0x00],
            error: malformed("CONNECT with reserved flags 0x1 [MQTT-2.2.2-2]")),
        MalformedCase(
            name: "MQTT-2.2.2-2 CONNACK 0x28", bytes: [0x28, 0x02, 0x00, 0x00],
            error: malformed("CONNACK with reserved flags 0x8 [MQTT-2.2.2-2]")),
        MalformedCase(
            name: "MQTT-2.2.2-2 PUBREC 0x58", bytes: [0x58, 0x02, 0x00, 0x01],
            error: malformed("PUBREC with reserved flags 0x8 [MQTT-2.2.2-2]")),
        MalformedCase(
            name: "MQTT-2.2.2-2 SUBACK 0x92", bytes: [0x92, 0x03, 0x00, 0x01, 0x00],
            error: malformed("SUBACK with reserved flags 0x2 [MQTT-2.2.2-2]")),
        MalformedCase(
            name: "MQTT-2.2.2-2 UNSUBACK 0xB2", bytes: [0xB2, 0x02, 0x00, 0x01],
            error: malformed("UNSUBACK with reserved flags 0x2 [MQTT-2.2.2-2]")),
        MalformedCase(
            name: "MQTT-2.2.2-2 PINGRESP 0xDF", bytes: [0xDF, 0x00],
            error: malformed("PINGRESP with reserved flags 0xF [MQTT-2.2.2-2]")),
        MalformedCase(
            name: "MQTT-3.6.1-1 PUBREL 0x60", bytes: [0x60, 0x02, 0x00, 0x01],
            error: malformed("PUBREL with reserved flags 0x0 [MQTT-3.6.1-1]")),
        MalformedCase(
            name: "MQTT-3.8.1-1 SUBSCRIBE 0x80", bytes: [0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x00],
            error: malformed("SUBSCRIBE with reserved flags 0x0 [MQTT-3.8.1-1]")),
        MalformedCase(
            name: "MQTT-3.10.1-1 UNSUBSCRIBE 0xA3", bytes: [0xA3, 0x05, 0x00, 0x01, 0x00, 0x01, 0x61],
            error: malformed("UNSUBSCRIBE with reserved flags 0x3 [MQTT-3.10.1-1]")),
        MalformedCase(
            name: "MQTT-3.14.1-1 DISCONNECT 0xE1", bytes: [0xE1, 0x00],
            error: malformed("DISCONNECT with reserved flags 0x1 [MQTT-3.14.1-1]")),
        MalformedCase(
            name: "MQTT-3.3.1-4 PUBLISH QoS 3", bytes: [0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01],
            error: malformed("PUBLISH with QoS 3 [MQTT-3.3.1-4]")),
        MalformedCase(
            name: "MQTT-3.3.1-2 QoS 0 PUBLISH with DUP", bytes: [0x38, 0x03, 0x00, 0x01, 0x61],
            error: malformed("QoS 0 PUBLISH with DUP set [MQTT-3.3.1-2]")),
        MalformedCase(
            name: "§2.2.3 five-byte remaining length", bytes: [0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
            error: malformed("remaining length longer than four bytes (§2.2.3)")),
        MalformedCase(
            name: "§2.2.3 five-byte remaining length of value 0", bytes: [0xC0, 0x80, 0x80, 0x80, 0x80, 0x00],
            error: malformed("remaining length longer than four bytes (§2.2.3)")),
        MalformedCase(
            name: "§2.2.3 fifth length byte announced: refused before it arrives",
            bytes: [0x30, 0x80, 0x80, 0x80, 0x80],
            error: malformed("remaining length longer than four bytes (§2.2.3)")),
        MalformedCase(
            name: "oversized, from a two-byte fixed header alone", bytes: [0x30, 0x0B],
            error: .packetTooLarge(size: 11, limit: 10), limit: 10),
        MalformedCase(
            name: "oversized, from a three-byte fixed header alone", bytes: [0x30, 0xFF, 0x7F],
            error: .packetTooLarge(size: 16_383, limit: 1000), limit: 1000),
        MalformedCase(
            name: "oversized, from a five-byte fixed header alone", bytes: [0x30, 0x80, 0x80, 0x80, 0x01],
            error: .packetTooLarge(size: 2_097_152, limit: 1_000_000), limit: 1_000_000),
        MalformedCase(
            name: "oversized, known from the first length byte before the length is complete", bytes: [0x30, 0xFF],
            error: .packetTooLarge(size: 127, limit: 100), limit: 100),
        MalformedCase(
            name: "MQTT-4.8.0-1 PUBACK with remaining length 3", bytes: [0x40, 0x03, 0x00, 0x01, 0x00],
            error: malformed("PUBACK with remaining length 3, not 2")),
        MalformedCase(
            name: "PUBREL with remaining length 1", bytes: [0x62, 0x01, 0x01],
            error: malformed("PUBREL with remaining length 1, not 2")),
        MalformedCase(
            name: "CONNACK with remaining length 3", bytes: [0x20, 0x03, 0x00, 0x00, 0x00],
            error: malformed("CONNACK with remaining length 3, not 2")),
        MalformedCase(
            name: "UNSUBACK with remaining length 0", bytes: [0xB0, 0x00],
            error: malformed("UNSUBACK with remaining length 0, not 2")),
        MalformedCase(
            name: "PINGREQ with remaining length 1", bytes: [0xC0, 0x01, 0x00],
            error: malformed("PINGREQ with remaining length 1, not 0")),
        MalformedCase(
            name: "PINGRESP with remaining length 2", bytes: [0xD0, 0x02, 0x00, 0x00],
            error: malformed("PINGRESP with remaining length 2, not 0")),
        MalformedCase(
            name: "DISCONNECT with remaining length 1", bytes: [0xE0, 0x01, 0x00],
            error: malformed("DISCONNECT with remaining length 1, not 0")),
    ]

    static let packetIdentifiers: [MalformedCase] = [
        MalformedCase(
            name: "MQTT-2.3.1-1 PUBACK id 0", bytes: [0x40, 0x02, 0x00, 0x00],
            error: malformed("PUBACK packet identifier 0 [MQTT-2.3.1-1]")),
        MalformedCase(
            name: "MQTT-2.3.1-1 PUBREC id 0", bytes: [0x50, 0x02, 0x00, 0x00],
            error: malformed("PUBREC packet identifier 0 [MQTT-2.3.1-1]")),
        MalformedCase(
            name: "MQTT-2.3.1-1 PUBREL id 0", bytes: [0x62, 0x02, 0x00, 0x00],
            error: malformed("PUBREL packet identifier 0 [MQTT-2.3.1-1]")),
        MalformedCase(
            name: "MQTT-2.3.1-1 PUBCOMP id 0", bytes: [0x70, 0x02, 0x00, 0x00],
            error: malformed("PUBCOMP packet identifier 0 [MQTT-2.3.1-1]")),
        MalformedCase(
            name: "MQTT-2.3.1-1 UNSUBACK id 0", bytes: [0xB0, 0x02, 0x00, 0x00],
            error: malformed("UNSUBACK packet identifier 0 [MQTT-2.3.1-1]")),
        MalformedCase(
            name: "MQTT-2.3.1-1 QoS 1 PUBLISH id 0", bytes: [0x32, 0x05, 0x00, 0x01, 0x61, 0x00, 0x00],
            error: malformed("PUBLISH packet identifier 0 [MQTT-2.3.1-1]")),
        MalformedCase(
            name: "MQTT-2.3.1-1 QoS 2 PUBLISH id 0", bytes: [0x34, 0x06, 0x00, 0x01, 0x61, 0x00, 0x00, 0x78],
            error: malformed("PUBLISH packet identifier 0 [MQTT-2.3.1-1]")),
        MalformedCase(
            name: "MQTT-2.3.1-1 SUBSCRIBE id 0", bytes: [0x82, 0x06, 0x00, 0x00, 0x00, 0x01, 0x61, 0x00],
            error: malformed("SUBSCRIBE packet identifier 0 [MQTT-2.3.1-1]")),
        MalformedCase(
            name: "MQTT-2.3.1-1 UNSUBSCRIBE id 0", bytes: [0xA2, 0x05, 0x00, 0x00, 0x00, 0x01, 0x61],
            error: malformed("UNSUBSCRIBE packet identifier 0 [MQTT-2.3.1-1]")),
        MalformedCase(
            name: "MQTT-2.3.1-1 SUBACK id 0", bytes: [0x90, 0x03, 0x00, 0x00, 0x00],
            error: malformed("SUBACK packet identifier 0 [MQTT-2.3.1-1]")),
    ]

    static let publish: [MalformedCase] = [
        MalformedCase(
            name: "MQTT-4.7.3-1 PUBLISH with an empty topic", bytes: [0x30, 0x02, 0x00, 0x00],
            error: malformed("PUBLISH topic name is empty [MQTT-4.7.3-1]")),
        MalformedCase(
            name: "MQTT-3.3.2-2 PUBLISH topic with +", bytes: wire([0x30, 0x05, 0x00, 0x03], utf8("a/+")),
            error: malformed("PUBLISH topic name contains a wildcard [MQTT-3.3.2-2]")),
        MalformedCase(
            name: "MQTT-3.3.2-2 PUBLISH topic with #", bytes: wire([0x30, 0x0C, 0x00, 0x0A], utf8("sensors/t#")),
            error: malformed("PUBLISH topic name contains a wildcard [MQTT-3.3.2-2]")),
        MalformedCase(
            name: "MQTT-1.5.3-1 PUBLISH topic with a surrogate (ED A0 80)",
            bytes: [0x30, 0x05, 0x00, 0x03, 0xED, 0xA0, 0x80],
            error: malformed("PUBLISH topic name is not well-formed UTF-8 [MQTT-1.5.3-1]")),
        MalformedCase(
            name: "MQTT-1.5.3-1 PUBLISH topic with an overlong '/' (C0 AF)",
            bytes: [0x30, 0x05, 0x00, 0x03, 0x61, 0xC0, 0xAF],
            error: malformed("PUBLISH topic name is not well-formed UTF-8 [MQTT-1.5.3-1]")),
        MalformedCase(
            name: "MQTT-1.5.3-2 MQTT-4.7.3-2 PUBLISH topic with U+0000",
            bytes: [0x30, 0x05, 0x00, 0x03, 0x61, 0x00, 0x62],
            error: malformed("PUBLISH topic name contains U+0000 [MQTT-1.5.3-2]")),
        MalformedCase(
            name: "PUBLISH topic length past the remaining length", bytes: [0x30, 0x03, 0x00, 0x05, 0x61],
            error: malformed("truncated PUBLISH topic name")),
        MalformedCase(
            name: "PUBLISH with remaining length 0", bytes: [0x30, 0x00],
            error: malformed("truncated PUBLISH topic name")),
        MalformedCase(
            name: "QoS 1 PUBLISH without room for its packet identifier", bytes: [0x32, 0x04, 0x00, 0x01, 0x61, 0x00],
            error: malformed("truncated PUBLISH packet identifier")),
    ]

    static let connect: [MalformedCase] = [
        MalformedCase(
            name: "MQTT-3.1.2-1 protocol name MQTX",
            bytes: connectPacket(wire([0x00, 0x04], utf8("MQTX"), [0x04, 0x02, 0x00, 0x3C, 0x00, 0x01], utf8("a"))),
            error: malformed("CONNECT protocol name is neither MQTT nor MQIsdp [MQTT-3.1.2-1]")),
        MalformedCase(
            name: "MQTT-3.1.2-1 protocol name in lower case",
            bytes: connectPacket(wire([0x00, 0x04], utf8("mqtt"), [0x04, 0x02, 0x00, 0x3C, 0x00, 0x01], utf8("a"))),
            error: malformed("CONNECT protocol name is neither MQTT nor MQIsdp [MQTT-3.1.2-1]")),
        MalformedCase(
            name: "MQTT-3.1.2-2 MQTT at level 3",
            bytes: connectPacket(wire([0x00, 0x04], utf8("MQTT"), [0x03, 0x02])),
            error: .unacceptableProtocolVersion(3)),
        MalformedCase(
            name: "MQTT-3.1.2-2 MQTT at level 5 (MQTT 5)",
            bytes: connectPacket(wire([0x00, 0x04], utf8("MQTT"), [0x05, 0x02, 0x00, 0x3C, 0x00])),
            error: .unacceptableProtocolVersion(5)),
        MalformedCase(
            name: "MQTT-3.1.2-2 MQTT at level 0x85 (the bridge bit on MQTT 5)",
            bytes: connectPacket(wire([0x00, 0x04], utf8("MQTT"), [0x85, 0x02, 0x00, 0x3C, 0x00, 0x01], utf8("a"))),
            error: .unacceptableProtocolVersion(0x85)),
        MalformedCase(
            name: "MQTT-3.1.2-2 MQTT at level 0x83 (the bridge bit on the wrong level for MQTT)",
            bytes: connectPacket(wire([0x00, 0x04], utf8("MQTT"), [0x83, 0x02, 0x00, 0x3C, 0x00, 0x01], utf8("a"))),
            error: .unacceptableProtocolVersion(0x83)),
        MalformedCase(
            name: "MQTT-3.1.2-2 MQIsdp at level 0x82 (the bridge bit on an unknown level)",
            bytes: connectPacket(wire([0x00, 0x06], utf8("MQIsdp"), [0x82, 0x02, 0x00, 0x3C, 0x00, 0x01], utf8("a"))),
            error: .unacceptableProtocolVersion(0x82)),
        MalformedCase(
            name: "MQTT-3.1.2-2 MQIsdp at level 0x84 (the bridge bit on the wrong level for MQIsdp)",
            bytes: connectPacket(wire([0x00, 0x06], utf8("MQIsdp"), [0x84, 0x02, 0x00, 0x3C, 0x00, 0x01], utf8("a"))),
            error: .unacceptableProtocolVersion(0x84)),
        MalformedCase(
            name: "MQTT-3.1.2-2 MQIsdp at level 4", bytes: connectPacket(wire([0x00, 0x06], utf8("MQIsdp"), [0x04])),
            error: .unacceptableProtocolVersion(4)),
        MalformedCase(
            name: "CONNECT cut inside the protocol name", bytes: [0x10, 0x03, 0x00, 0x04, 0x4D],
            error: malformed("truncated CONNECT protocol name")),
        MalformedCase(
            name: "MQTT-3.1.2-3 reserved connect flag", bytes: connectPacket(connectHead(flags: 0x03)),
            error: malformed("CONNECT reserved flag set [MQTT-3.1.2-3]")),
        MalformedCase(
            name: "MQTT-3.1.2-13 will QoS 1 without will flag", bytes: connectPacket(connectHead(flags: 0x0A)),
            error: malformed("CONNECT will QoS without will flag [MQTT-3.1.2-11] [MQTT-3.1.2-13]")),
        MalformedCase(
            name: "MQTT-3.1.2-15 will retain without will flag", bytes: connectPacket(connectHead(flags: 0x22)),
            error: malformed("CONNECT will retain without will flag [MQTT-3.1.2-11] [MQTT-3.1.2-15]")),
        MalformedCase(
            name: "MQTT-3.1.2-14 will QoS 3", bytes: connectPacket(connectHead(flags: 0x1E)),
            error: malformed("CONNECT will QoS 3 [MQTT-3.1.2-14]")),
        MalformedCase(
            name: "MQTT-3.1.2-22 password flag without user name flag", bytes: connectPacket(connectHead(flags: 0x42)),
            error: malformed("CONNECT password flag without user name flag [MQTT-3.1.2-22]")),
        MalformedCase(
            name: "MQTT-3.1.2-22 also for 3.1, as mosquitto 2.0 does",
            bytes: connectPacket(wire([0x00, 0x06], utf8("MQIsdp"), [0x03, 0x42])),
            error: malformed("CONNECT password flag without user name flag [MQTT-3.1.2-22]")),
        MalformedCase(
            name: "CONNECT cut before the keep alive", bytes: connectPacket(connectHead(flags: 0x02) + [0x00]),
            error: malformed("truncated CONNECT keep alive")),
        MalformedCase(
            name: "MQTT-3.1.3-3 no client identifier",
            bytes: connectPacket(wire(connectHead(flags: 0x02), [0x00, 0x3C])),
            error: malformed("truncated CONNECT client identifier [MQTT-3.1.3-3]")),
        MalformedCase(
            name: "MQTT-3.1.3-3 client identifier longer than the packet",
            bytes: connectPacket(wire(connectHead(flags: 0x02), [0x00, 0x3C, 0x00, 0x05], utf8("ab"))),
            error: malformed("truncated CONNECT client identifier [MQTT-3.1.3-3]")),
        MalformedCase(
            name: "MQTT-3.1.3-4 client identifier with a surrogate",
            bytes: connectPacket(wire(connectHead(flags: 0x02), [0x00, 0x3C, 0x00, 0x03, 0xED, 0xBF, 0xBF])),
            error: malformed("CONNECT client identifier is not well-formed UTF-8 [MQTT-1.5.3-1] [MQTT-3.1.3-4]")),
        MalformedCase(
            name: "MQTT-1.5.3-2 client identifier a\\0b",
            bytes: connectPacket(wire(connectHead(flags: 0x02), [0x00, 0x3C, 0x00, 0x03, 0x61, 0x00, 0x62])),
            error: malformed("CONNECT client identifier contains U+0000 [MQTT-1.5.3-2] [MQTT-3.1.3-4]")),
        MalformedCase(
            name: "MQTT-3.1.2-9 will flag without will topic",
            bytes: connectPacket(wire(connectHead(flags: 0x06), [0x00, 0x3C, 0x00, 0x01], utf8("a"))),
            error: malformed("truncated CONNECT will topic [MQTT-3.1.2-9]")),
        MalformedCase(
            name: "MQTT-3.1.2-9 will flag without will message",
            bytes: connectPacket(
                wire(connectHead(flags: 0x06), [0x00, 0x3C, 0x00, 0x01], utf8("a"), [0x00, 0x01], utf8("w"))),
            error: malformed("truncated CONNECT will message [MQTT-3.1.2-9]")),
        MalformedCase(
            name: "MQTT-4.7.1-1 will topic with a wildcard",
            bytes: connectPacket(
                wire(
                    connectHead(flags: 0x06), [0x00, 0x3C, 0x00, 0x01], utf8("a"), [0x00, 0x03], utf8("w/#"),
                    [0x00, 0x00])),
            error: malformed("CONNECT will topic contains a wildcard [MQTT-4.7.1-1]")),
        MalformedCase(
            name: "MQTT-4.7.3-1 empty will topic",
            bytes: connectPacket(
                wire(connectHead(flags: 0x06), [0x00, 0x3C, 0x00, 0x01], utf8("a"), [0x00, 0x00, 0x00, 0x00])),
            error: malformed("CONNECT will topic is empty [MQTT-4.7.3-1]")),
        MalformedCase(
            name: "MQTT-3.1.3-10 will topic with overlong UTF-8 (E0 80 AF)",
            bytes: connectPacket(
                wire(
                    connectHead(flags: 0x06), [0x00, 0x3C, 0x00, 0x01], utf8("a"),
                    [0x00, 0x03, 0xE0, 0x80, 0xAF, 0x00, 0x00])),
            error: malformed("CONNECT will topic is not well-formed UTF-8 [MQTT-1.5.3-1]")),
        MalformedCase(
            name: "MQTT-3.1.2-19 user name flag without user name",
            bytes: connectPacket(wire(connectHead(flags: 0x82), [0x00, 0x3C, 0x00, 0x01], utf8("a"))),
            error: malformed("truncated CONNECT user name [MQTT-3.1.2-19]")),
        MalformedCase(
            name: "MQTT-3.1.3-11 user name with invalid UTF-8",
            bytes: connectPacket(
                wire(connectHead(flags: 0x82), [0x00, 0x3C, 0x00, 0x01], utf8("a"), [0x00, 0x01, 0xFF])),
            error: malformed("CONNECT user name is not well-formed UTF-8 [MQTT-1.5.3-1] [MQTT-3.1.3-11]")),
        MalformedCase(
            name: "MQTT-3.1.2-21 password flag without password",
            bytes: connectPacket(
                wire(connectHead(flags: 0xC2), [0x00, 0x3C, 0x00, 0x01], utf8("a"), [0x00, 0x01], utf8("u"))),
            error: malformed("truncated CONNECT password [MQTT-3.1.2-21]")),
        MalformedCase(
            name: "MQTT-3.1.2-18 a user name with the user name flag clear",
            bytes: connectPacket(
                wire(connectHead(flags: 0x02), [0x00, 0x3C, 0x00, 0x01], utf8("a"), [0x00, 0x01], utf8("u"))),
            error: malformed("CONNECT has 3 bytes after its last field [MQTT-3.1.2-18] [MQTT-3.1.2-20]")),
        MalformedCase(
            name: "MQTT-3.1.2-20 a password with the password flag clear",
            bytes: connectPacket(
                wire(
                    connectHead(flags: 0x82), [0x00, 0x3C, 0x00, 0x01], utf8("a"), [0x00, 0x01], utf8("u"),
                    [0x00, 0x00])),
            error: malformed("CONNECT has 2 bytes after its last field [MQTT-3.1.2-18] [MQTT-3.1.2-20]")),
    ]

    static let subscriptions: [MalformedCase] = [
        MalformedCase(
            name: "MQTT-3.8.3-3 SUBSCRIBE without a filter", bytes: [0x82, 0x02, 0x00, 0x01],
            error: malformed("SUBSCRIBE without a topic filter [MQTT-3.8.3-3]")),
        MalformedCase(
            name: "MQTT-3.8.3-4 SUBSCRIBE requesting QoS 3", bytes: [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x03],
            error: malformed("SUBSCRIBE requested QoS byte 0x3 [MQTT-3.8.3-4]")),
        MalformedCase(
            name: "MQTT-3.8.3-4 SUBSCRIBE requested QoS with reserved bits",
            bytes: [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x81],
            error: malformed("SUBSCRIBE requested QoS byte 0x81 [MQTT-3.8.3-4]")),
        MalformedCase(
            name: "SUBSCRIBE filter without its QoS byte", bytes: [0x82, 0x05, 0x00, 0x01, 0x00, 0x01, 0x61],
            error: malformed("truncated SUBSCRIBE requested QoS")),
        MalformedCase(
            name: "SUBSCRIBE filter longer than the packet", bytes: [0x82, 0x06, 0x00, 0x01, 0x00, 0x04, 0x61, 0x00],
            error: malformed("truncated SUBSCRIBE topic filter")),
        MalformedCase(
            name: "SUBSCRIBE with a stray byte after the last request",
            bytes: [0x82, 0x07, 0x00, 0x01, 0x00, 0x01, 0x61, 0x00, 0x00],
            error: malformed("truncated SUBSCRIBE topic filter")),
        MalformedCase(
            name: "MQTT-4.7.1-2 SUBSCRIBE a#", bytes: wire([0x82, 0x06, 0x00, 0x01, 0x00, 0x02], utf8("a#"), [0x00]),
            error: malformed("SUBSCRIBE topic filter has a '#' that is not a whole last level [MQTT-4.7.1-2]")),
        MalformedCase(
            name: "MQTT-4.7.1-2 SUBSCRIBE a/#/b",
            bytes: wire([0x82, 0x09, 0x00, 0x01, 0x00, 0x05], utf8("a/#/b"), [0x00]),
            error: malformed("SUBSCRIBE topic filter has a '#' that is not a whole last level [MQTT-4.7.1-2]")),
        MalformedCase(
            name: "MQTT-4.7.1-3 SUBSCRIBE a/+b",
            bytes: wire([0x82, 0x08, 0x00, 0x01, 0x00, 0x04], utf8("a/+b"), [0x00]),
            error: malformed("SUBSCRIBE topic filter has a '+' that is not a whole level [MQTT-4.7.1-3]")),
        MalformedCase(
            name: "MQTT-4.7.3-1 SUBSCRIBE an empty filter", bytes: [0x82, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00],
            error: malformed("SUBSCRIBE topic filter is empty [MQTT-4.7.3-1]")),
        MalformedCase(
            name: "MQTT-1.5.3-1 SUBSCRIBE a filter with a surrogate",
            bytes: [0x82, 0x08, 0x00, 0x01, 0x00, 0x03, 0xED, 0xA0, 0x80, 0x00],
            error: malformed("SUBSCRIBE topic filter is not well-formed UTF-8 [MQTT-1.5.3-1]")),
        MalformedCase(
            name: "MQTT-4.7.3-2 SUBSCRIBE a/\\0", bytes: [0x82, 0x08, 0x00, 0x01, 0x00, 0x03, 0x61, 0x2F, 0x00, 0x00],
            error: malformed("SUBSCRIBE topic filter contains U+0000 [MQTT-1.5.3-2]")),
        MalformedCase(
            name: "MQTT-3.10.3-2 UNSUBSCRIBE without a filter", bytes: [0xA2, 0x02, 0x00, 0x01],
            error: malformed("UNSUBSCRIBE without a topic filter [MQTT-3.10.3-2]")),
        MalformedCase(
            name: "MQTT-4.7.1-2 UNSUBSCRIBE a/#/b", bytes: wire([0xA2, 0x09, 0x00, 0x01, 0x00, 0x05], utf8("a/#/b")),
            error: malformed("UNSUBSCRIBE topic filter has a '#' that is not a whole last level [MQTT-4.7.1-2]")),
        MalformedCase(
            name: "UNSUBSCRIBE filter longer than the packet", bytes: [0xA2, 0x05, 0x00, 0x01, 0x00, 0x02, 0x61],
            error: malformed("truncated UNSUBSCRIBE topic filter")),
        MalformedCase(
            name: "MQTT-3.9.3-2 SUBACK return code 3", bytes: [0x90, 0x03, 0x00, 0x01, 0x03],
            error: malformed("SUBACK return code 0x3 is reserved [MQTT-3.9.3-2]")),
        MalformedCase(
            name: "MQTT-3.9.3-2 SUBACK return code 0x81", bytes: [0x90, 0x04, 0x00, 0x01, 0x00, 0x81],
            error: malformed("SUBACK return code 0x81 is reserved [MQTT-3.9.3-2]")),
        MalformedCase(
            name: "MQTT-3.9.3-1 SUBACK without a return code", bytes: [0x90, 0x02, 0x00, 0x01],
            error: malformed("SUBACK without a return code [MQTT-3.9.3-1]")),
    ]

    static let connack: [MalformedCase] = [
        MalformedCase(
            name: "§3.2.2.1 CONNACK acknowledge flags with bit 1 set", bytes: [0x20, 0x02, 0x02, 0x00],
            error: malformed("CONNACK acknowledge flags 0x2 set reserved bits")),
        MalformedCase(
            name: "§3.2.2.3 CONNACK return code 6", bytes: [0x20, 0x02, 0x00, 0x06],
            error: malformed("CONNACK return code 6 is reserved (§3.2.2.3)")),
        MalformedCase(
            name: "MQTT-3.2.2-4 CONNACK refusal with session present", bytes: [0x20, 0x02, 0x01, 0x05],
            error: malformed("CONNACK refusal with session present set [MQTT-3.2.2-4]")),
    ]

    static let all = fixedHeader + packetIdentifiers + publish + connect + subscriptions + connack
}

final class MalformedPacketTests: XCTestCase {
    func testEveryMalformedFrameRaisesItsExactError() {
        for item in MalformedCases.all {
            let decoder = FrameDecoder(maxRemainingLength: item.limit)
            XCTAssertEqual(decodeFront(item.bytes, with: decoder).failure, item.error, item.name)
        }
    }

    /// The error depends only on the bytes seen: every prefix is either still incomplete or already raises
    /// the same error, and once a prefix raises it every longer one does.
    func testEveryPrefixIsIncompleteOrRaisesTheSameError() {
        for item in MalformedCases.all {
            let decoder = FrameDecoder(maxRemainingLength: item.limit)
            var raised = false
            for length in 1...item.bytes.count {
                switch decodeFront(item.bytes[..<length], with: decoder) {
                case .success(nil):
                    XCTAssertFalse(raised, "\(item.name): prefix of \(length) bytes went back to incomplete")
                case .success(let decoded?):
                    XCTFail("\(item.name): prefix of \(length) bytes decoded \(decoded.packet)")
                case .failure(let error):
                    XCTAssertEqual(error, item.error, "\(item.name): prefix of \(length) bytes")
                    raised = true
                }
            }
        }
    }

    func testTheFixedHeaderIsJudgedBeforeTheBodyArrives() {
        // Type, flags, length encoding and size limits are all known from at most five bytes.
        for item in MalformedCases.fixedHeader {
            let decoder = FrameDecoder(maxRemainingLength: item.limit)
            // The type byte, then length bytes up to the first without a continuation bit, at most five in all.
            let lengthBytes = item.bytes.dropFirst().prefix(4)
            let lastLengthByte = lengthBytes.firstIndex(where: { $0 & 0x80 == 0 }) ?? lengthBytes.endIndex - 1
            let header = Array(item.bytes[...lastLengthByte])
            XCTAssertLessThanOrEqual(header.count, 5, item.name)
            XCTAssertEqual(decodeFront(header, with: decoder).failure, item.error, item.name)
        }
    }

    func testAMalformedFrameAfterAGoodOneLetsTheGoodOneOut() {
        for item in MalformedCases.all where item.limit == 268_435_455 {
            let stream = PacketFixtures.connect[0].bytes + item.bytes
            let result = decodeStream(stream, chunkSizes: [3])
            XCTAssertEqual(result.packets, [PacketFixtures.connect[0].packet], item.name)
            XCTAssertEqual(result.error, item.error, item.name)
        }
    }

    func testMQTT31IsHeldToMosquittosLooserRules() throws {
        // mosquitto 2.0 checks the reserved bit and the will QoS/retain bits only for 3.1.1, and ignores a 3.1
        // user name or password flag when nothing is left to read.
        let lenient: [(name: String, body: [UInt8], expected: Connect)] = [
            (
                "reserved flag set",
                wire([0x00, 0x06], utf8("MQIsdp"), [0x03, 0x03, 0x00, 0x3C, 0x00, 0x01], utf8("a")),
                Connect(protocolVersion: .v3_1, clientID: "a")
            ),
            (
                "will QoS and retain without will flag",
                wire([0x00, 0x06], utf8("MQIsdp"), [0x03, 0x2A, 0x00, 0x3C, 0x00, 0x01], utf8("a")),
                Connect(protocolVersion: .v3_1, clientID: "a")
            ),
            (
                "user name and password flags with nothing left",
                wire([0x00, 0x06], utf8("MQIsdp"), [0x03, 0xC2, 0x00, 0x3C, 0x00, 0x01], utf8("a")),
                Connect(protocolVersion: .v3_1, clientID: "a")
            ),
            (
                "password flag with nothing left after the user name",
                wire(
                    [0x00, 0x06], utf8("MQIsdp"), [0x03, 0xC2, 0x00, 0x3C, 0x00, 0x01], utf8("a"), [0x00, 0x01],
                    utf8("u")),
                Connect(protocolVersion: .v3_1, clientID: "a", username: "u")
            ),
        ]
        for item in lenient {
            let decoded = try XCTUnwrap(try decodeFront(connectPacket(item.body)).get(), item.name)
            XCTAssertEqual(decoded.packet, .connect(item.expected), item.name)
        }
    }

    func testDecodeErrorsDescribeTheirConsequence() {
        XCTAssertEqual(DecodeError.unacceptableProtocolVersion(5).description, "unacceptable protocol level 5")
        XCTAssertEqual(
            DecodeError.packetTooLarge(size: 11, limit: 10).description,
            "packet of 11 bytes exceeds the limit of 10")
        XCTAssertEqual(DecodeError.malformed("x").description, "malformed packet: x")
    }
}
