package hub

// ApplyDelta applies a delta's patch by the rule of docs/protocol.md, for
// the tests of the hub_test package.
var ApplyDelta = apply
