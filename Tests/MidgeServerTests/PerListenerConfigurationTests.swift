// `per_listener_settings true`: security keys belong to the listener they follow; keys before the first listener
// are every listener's defaults; the setting must come before every security key.
import MidgeServer
import XCTest

final class PerListenerConfigurationTests: XCTestCase {
    func testSecurityKeysBelongToTheirListener() throws {
        let configuration = try Configuration.parse(
            text: """
                per_listener_settings true
                auto_id_prefix shared-
                password_file /etc/midge/default-passwords
                listener 1883 127.0.0.1
                allow_anonymous true
                listener 8883
                password_file /etc/midge/passwords
                acl_file /etc/midge/acl
                jwt_hs256_secret_file /etc/midge/jwt
                """, fileName: "test.conf")
        XCTAssertTrue(configuration.perListenerSettings)
        let local = try XCTUnwrap(configuration.listeners.first?.security)
        let network = try XCTUnwrap(configuration.listeners.last?.security)
        XCTAssertEqual(configuration.listeners.map(\.securityProfile), [1, 2])
        XCTAssertEqual(local.allowAnonymous, true)
        XCTAssertEqual(local.passwordFile, "/etc/midge/default-passwords", "filled from the defaults")
        XCTAssertEqual(local.autoIDPrefix, "shared-")
        XCTAssertEqual(network.allowAnonymous, false, "listeners refuse anonymous clients unless they allow them")
        XCTAssertEqual(network.passwordFile, "/etc/midge/passwords")
        XCTAssertEqual(network.aclFile, "/etc/midge/acl")
        XCTAssertEqual(network.tokenKey, .hs256SecretFile("/etc/midge/jwt"))
        XCTAssertNil(configuration.passwordFile, "nothing is broker-wide")
    }

    func testMustComeBeforeEverySecurityKey() {
        XCTAssertThrowsError(
            try Configuration.parse(text: "password_file /x\nper_listener_settings true\n", fileName: "test.conf")
        ) { error in
            XCTAssertEqual((error as? ConfigError)?.key, "per_listener_settings")
            XCTAssertEqual((error as? ConfigError)?.line, 2)
        }
    }

    func testWithoutItListenersShareTheBrokerWideKeys() throws {
        let configuration = try Configuration.parse(
            text: "listener 1883\nallow_anonymous true\nlistener 8883\npassword_file /x\n", fileName: "test.conf")
        XCTAssertEqual(configuration.listeners.map(\.securityProfile), [0, 0])
        XCTAssertEqual(configuration.passwordFile, "/x")
        XCTAssertTrue(configuration.broker.allowAnonymous)
    }
}
