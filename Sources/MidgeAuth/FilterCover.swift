// Whether one topic filter lies within another (§4.7): every name the inner one matches, the outer
// one matches too. Used to bound SUBSCRIBE by the filters a token grants.
import MQTTCodec

enum FilterCover {
    static func covers(_ outer: TopicFilter, _ inner: TopicFilter) -> Bool {
        let slash = UInt8(ascii: "/")
        let outerLevels = outer.bytes.split(separator: slash, omittingEmptySubsequences: false)
        let innerLevels = inner.bytes.split(separator: slash, omittingEmptySubsequences: false)
        let plus: ArraySlice<UInt8> = [UInt8(ascii: "+")]
        let hash: ArraySlice<UInt8> = [UInt8(ascii: "#")]
        // [MQTT-4.7.2-1] an outer filter starting with a wildcard matches no `$` name, so it cannot
        // cover an inner filter whose first level is a literal starting with `$`.
        if let first = outerLevels.first, first == plus || first == hash,
            let innerFirst = innerLevels.first, innerFirst.first == UInt8(ascii: "$")
        {
            return false
        }
        var index = 0
        while true {
            if index < outerLevels.count && outerLevels[index] == hash { return true }
            if index == innerLevels.count { return index == outerLevels.count }
            if index == outerLevels.count { return false }
            let o = outerLevels[index]
            let i = innerLevels[index]
            if i == hash { return false }  // the inner filter reaches deeper than a non-`#` outer level
            if o == plus {
                index += 1
                continue
            }
            if i == plus || o != i { return false }
            index += 1
        }
    }
}
