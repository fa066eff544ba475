// `node:assert/strict` in a page: the `assert` package (Node's assert, ported to browsers), strict mode.
import assert from 'assert'

export default assert.strict
