// CONNACK (§3.2): the broker's answer to CONNECT.

public enum ConnectReturnCode: UInt8, Sendable {
    case accepted = 0
    case unacceptableProtocolVersion = 1
    case identifierRejected = 2
    case serverUnavailable = 3
    case badUsernameOrPassword = 4
    case notAuthorized = 5
}

public struct ConnAck: Sendable, Equatable {
    /// Always false when the return code is not `.accepted` [MQTT-3.2.2-4].
    public var sessionPresent: Bool
    public var returnCode: ConnectReturnCode

    public init(sessionPresent: Bool, returnCode: ConnectReturnCode) {
        self.sessionPresent = sessionPresent && returnCode == .accepted
        self.returnCode = returnCode
    }
}
