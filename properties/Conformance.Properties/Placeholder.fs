module Conformance.Properties.Placeholder
let x = 1
