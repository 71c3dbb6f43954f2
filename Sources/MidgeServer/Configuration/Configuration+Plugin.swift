// mosquitto's `plugin` and `plugin_opt_*` keys: the one plugin Midge has built in is the dynamic-security plugin
// (`plugin …/mosquitto_dynamic_security.so` with `plugin_opt_config_file`); any other stays refused.

extension Configuration {
    /// The file name that turns on the built-in dynamic security, whatever directory the line names.
    public static let dynamicSecurityPluginName = "mosquitto_dynamic_security.so"
}

extension Parser {
    /// Takes `plugin` and `plugin_opt_*` lines. False when `key` is neither.
    mutating func parsePluginKey(_ key: String, rest: String, number: Int) throws(ConfigError) -> Bool {
        func fail(_ message: String) -> ConfigError {
            ConfigError(fileName: fileName, line: number, key: key, message: message)
        }
        if key == "plugin" {
            guard !rest.isEmpty else { throw fail("missing value") }
            let name = rest.split(separator: "/").last.map(String.init) ?? rest
            guard name == Configuration.dynamicSecurityPluginName else {
                throw fail(
                    "a mosquitto option that Midge does not implement yet, except for the dynamic security plugin "
                        + "(\(Configuration.dynamicSecurityPluginName)), which is built in")
            }
            guard !dynamicSecurityPluginGiven else {
                throw fail("the dynamic security plugin can only be loaded once, as in mosquitto")
            }
            dynamicSecurityPluginGiven = true
            return true
        }
        guard key.hasPrefix("plugin_opt_") else { return false }
        guard dynamicSecurityPluginGiven else {
            throw fail("a mosquitto option that Midge does not implement yet (it belongs to a `plugin` line)")
        }
        switch key {
        case "plugin_opt_config_file":
            guard !rest.isEmpty else { throw fail("missing value") }
            configuration.dynamicSecurityFile = rest
        default:
            throw fail("the dynamic security plugin takes plugin_opt_config_file only")
        }
        return true
    }

    /// mosquitto runs the plugin without a file as if it were not loaded, and logs a warning; a broker that was meant
    /// to check passwords and does not is worse than one that does not start.
    func finishPlugin() throws(ConfigError) {
        guard dynamicSecurityPluginGiven, configuration.dynamicSecurityFile == nil else { return }
        throw ConfigError(
            fileName: fileName, line: 0, key: "plugin",
            message: "the dynamic security plugin needs plugin_opt_config_file, the path of its JSON file")
    }
}
