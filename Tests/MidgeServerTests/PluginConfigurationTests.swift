// `plugin` and `plugin_opt_config_file`: mosquitto's dynamic security plugin is built in; other plugins stay refused.
import XCTest

@testable import MidgeServer

final class PluginConfigurationTests: XCTestCase {
    private func parse(_ text: String) throws -> Configuration {
        try Configuration.parse(text: text, fileName: "test.conf")
    }

    private func error(_ text: String) -> ConfigError? {
        do {
            _ = try parse(text)
            XCTFail("expected an error for \(text.debugDescription)")
            return nil
        } catch {
            return error as? ConfigError
        }
    }

    func testTheDynamicSecurityPluginNamesItsFile() throws {
        let configuration = try parse(
            "listener 1883\nplugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so\n"
                + "plugin_opt_config_file /var/lib/mosquitto/dynamic security.json\n")
        XCTAssertEqual(configuration.dynamicSecurityFile, "/var/lib/mosquitto/dynamic security.json")
        XCTAssertNil(try parse("listener 1883\n").dynamicSecurityFile)
    }

    func testEverythingElseAboutPluginsIsRefused() {
        XCTAssertEqual(error("plugin /usr/lib/other_plugin.so\n")?.key, "plugin")
        XCTAssertTrue(error("plugin /usr/lib/other_plugin.so\n")?.message.contains("does not implement yet") ?? false)
        // Without its file the plugin would check nothing.
        XCTAssertEqual(error("plugin mosquitto_dynamic_security.so\n")?.key, "plugin")
        XCTAssertEqual(error("plugin_opt_config_file /x.json\n")?.key, "plugin_opt_config_file")
        XCTAssertEqual(
            error("plugin mosquitto_dynamic_security.so\nplugin_opt_config_file /x.json\nplugin_opt_other 1\n")?.line, 3
        )
        XCTAssertEqual(
            error("plugin mosquitto_dynamic_security.so\nplugin mosquitto_dynamic_security.so\n")?.line, 2)
    }
}
