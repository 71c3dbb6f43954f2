// The Prometheus text exposition format 0.0.4, checked by parsing the text back with a tiny parser.

import XCTest

@testable import MidgeGateway

final class PrometheusTextTests: XCTestCase {
    /// A sample as the 0.0.4 text format defines it, parsed back.
    struct Sample: Equatable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    /// Parses HELP/TYPE lines and samples; returns nil at the first line that breaks the format.
    func parse(_ text: String) -> (help: [String: String], types: [String: String], samples: [Sample])? {
        var help: [String: String] = [:]
        var types: [String: String] = [:]
        var samples: [Sample] = []
        guard text.hasSuffix("\n") else { return nil }
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# HELP ") {
                let rest = line.dropFirst(7)
                guard let space = rest.firstIndex(of: " ") else { return nil }
                help[String(rest[..<space])] = unescape(rest[rest.index(after: space)...], quotes: false)
            } else if line.hasPrefix("# TYPE ") {
                let parts = line.dropFirst(7).split(separator: " ")
                guard parts.count == 2 else { return nil }
                types[String(parts[0])] = String(parts[1])
            } else {
                guard let sample = parseSample(line) else { return nil }
                samples.append(sample)
            }
        }
        return (help, types, samples)
    }

    func parseSample(_ line: Substring) -> Sample? {
        var index = line.startIndex
        while index < line.endIndex, line[index] != "{", line[index] != " " { index = line.index(after: index) }
        let name = String(line[..<index])
        var labels: [String: String] = [:]
        if index < line.endIndex, line[index] == "{" {
            index = line.index(after: index)
            // Each pass reads one `name="value"` pair; the loop ends at `}`.
            while index < line.endIndex, line[index] != "}" {
                guard let equals = line[index...].firstIndex(of: "=") else { return nil }
                let labelName = String(line[index..<equals])
                var cursor = line.index(after: equals)
                guard cursor < line.endIndex, line[cursor] == "\"" else { return nil }
                cursor = line.index(after: cursor)
                var raw = ""
                while cursor < line.endIndex, line[cursor] != "\"" {
                    if line[cursor] == "\\" {
                        raw.append(line[cursor])
                        cursor = line.index(after: cursor)
                        guard cursor < line.endIndex else { return nil }
                    }
                    raw.append(line[cursor])
                    cursor = line.index(after: cursor)
                }
                guard cursor < line.endIndex else { return nil }
                labels[labelName] = unescape(raw[...], quotes: true)
                index = line.index(after: cursor)
                if index < line.endIndex, line[index] == "," { index = line.index(after: index) }
            }
            guard index < line.endIndex else { return nil }
            index = line.index(after: index)
        }
        guard index < line.endIndex, line[index] == " " else { return nil }
        let valueText = line[line.index(after: index)...]
        let value: Double
        switch valueText {
        case "+Inf": value = .infinity
        case "-Inf": value = -.infinity
        case "NaN": value = .nan
        default:
            guard let parsed = Double(valueText) else { return nil }
            value = parsed
        }
        return Sample(name: name, labels: labels, value: value)
    }

    func unescape(_ text: Substring, quotes: Bool) -> String {
        var out = ""
        var escaped = false
        for character in text {
            if escaped {
                switch character {
                case "n": out.append("\n")
                case "\\": out.append("\\")
                case "\"" where quotes: out.append("\"")
                default:
                    out.append("\\")
                    out.append(character)
                }
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else {
                out.append(character)
            }
        }
        return out
    }

    func testCountersGaugesAndLabelsRoundTrip() throws {
        var text = PrometheusText()
        text.counter("midge_messages_received_total", help: "PUBLISH packets received.", value: 42)
        text.gauge("midge_uptime_seconds", help: "Seconds since start.", value: 12.5)
        text.family(
            "midge_connections", type: .gauge, help: "Open connections\nby listener \\ protocol.",
            samples: [
                .init(labels: [("listener", "1883"), ("protocol", "mqtt")], value: 10),
                .init(labels: [("listener", "8080"), ("protocol", "websockets")], value: 2),
                .init(labels: [("listener", "we\"ird\\\nname")], value: 0),
            ])
        text.family(
            "midge_publish_latency_seconds", type: .untyped, help: "Latency.",
            samples: [
                .init(suffix: "_sum", value: 0.25), .init(suffix: "_count", value: 3),
                .init(suffix: "_max", value: .infinity), .init(suffix: "_min", value: -.infinity),
            ])
        let parsed = try XCTUnwrap(parse(text.text))
        XCTAssertEqual(
            parsed.types,
            [
                "midge_messages_received_total": "counter", "midge_uptime_seconds": "gauge",
                "midge_connections": "gauge",
                "midge_publish_latency_seconds": "untyped",
            ])
        XCTAssertEqual(parsed.help["midge_connections"], "Open connections\nby listener \\ protocol.")
        XCTAssertEqual(
            parsed.samples,
            [
                Sample(name: "midge_messages_received_total", labels: [:], value: 42),
                Sample(name: "midge_uptime_seconds", labels: [:], value: 12.5),
                Sample(name: "midge_connections", labels: ["listener": "1883", "protocol": "mqtt"], value: 10),
                Sample(name: "midge_connections", labels: ["listener": "8080", "protocol": "websockets"], value: 2),
                Sample(name: "midge_connections", labels: ["listener": "we\"ird\\\nname"], value: 0),
                Sample(name: "midge_publish_latency_seconds_sum", labels: [:], value: 0.25),
                Sample(name: "midge_publish_latency_seconds_count", labels: [:], value: 3),
                Sample(name: "midge_publish_latency_seconds_max", labels: [:], value: .infinity),
                Sample(name: "midge_publish_latency_seconds_min", labels: [:], value: -.infinity),
            ])
        XCTAssertTrue(text.text.contains("midge_messages_received_total 42\n"), "integers have no fraction")
        XCTAssertTrue(text.text.contains(#"{listener="we\"ird\\\nname"}"#), "label values escaped")
    }

    func testExactTextAndValues() {
        var text = PrometheusText()
        text.counter("a_total", help: "A.", value: 1, labels: [("k", "v")])
        XCTAssertEqual(text.text, "# HELP a_total A.\n# TYPE a_total counter\na_total{k=\"v\"} 1\n")
        XCTAssertEqual(PrometheusText.format(.nan), "NaN")
        XCTAssertEqual(PrometheusText.format(-3), "-3")
        XCTAssertEqual(PrometheusText.format(1e20), "1e+20")
        XCTAssertEqual(PrometheusText.format(0.000001), "1e-06")
        XCTAssertEqual(PrometheusText.contentType, "text/plain; version=0.0.4; charset=utf-8")
    }

    func testHelpWithCRLFKeepsOneLine() throws {
        var text = PrometheusText()
        text.gauge("g", help: "two\r\nlines", value: 0)
        XCTAssertEqual(text.text.split(separator: "\n").count, 3)
        XCTAssertEqual(try XCTUnwrap(parse(text.text)).help["g"], "two\r\nlines")
    }

    func testNameRules() {
        XCTAssertTrue(PrometheusText.isMetricName("midge:rate_5m"))
        XCTAssertFalse(PrometheusText.isMetricName("5xx"))
        XCTAssertFalse(PrometheusText.isMetricName("a-b"))
        XCTAssertFalse(PrometheusText.isMetricName(""))
        XCTAssertTrue(PrometheusText.isLabelName("listener_port"))
        XCTAssertFalse(PrometheusText.isLabelName("a:b"))
        XCTAssertFalse(PrometheusText.isLabelName("__name__"))
    }
}
