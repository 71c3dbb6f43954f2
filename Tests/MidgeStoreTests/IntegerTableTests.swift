// The writer's integer hash table against Dictionary, under random inserts, updates, removals and clears.
import XCTest

@testable import MidgeStore

final class IntegerTableTests: XCTestCase {
    func testBehavesLikeADictionary() {
        var random = SeededGenerator(state: 64)
        var table = IntegerTable(capacity: 4)
        var model: [UInt64: Int32] = [:]
        for step in 0..<200_000 {
            // Keys from a small range collide and form long probe runs; some are far apart.
            let key = Bool.random(using: &random) ? UInt64.random(in: 0..<300, using: &random) : random.next()
            switch Int.random(in: 0..<100, using: &random) {
            case 0..<50:
                let value = Int32.random(in: -5...1000, using: &random)
                table[key] = value
                model[key] = value
            case 50..<90:
                XCTAssertEqual(table.removeValue(forKey: key), model.removeValue(forKey: key), "step \(step)")
            case 90..<99:
                XCTAssertEqual(table[key], model[key], "step \(step)")
            default:
                table.removeAll()
                model.removeAll()
            }
            XCTAssertEqual(table.count, model.count, "step \(step)")
            if step % 1000 == 0 {
                var seen: [UInt64: Int32] = [:]
                table.forEach { seen[$0] = $1 }
                XCTAssertEqual(seen, model, "step \(step)")
                for key in model.keys { XCTAssertEqual(table[key], model[key], "step \(step) key \(key)") }
            }
        }
    }
}
