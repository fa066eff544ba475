/**
 * Bodies recorded verbatim from an original Lua shared-state router named `W1`
 * (see /work/shared/seed/lua-wire-examples.md). String.raw keeps json-c's `\/` escapes exactly as sent.
 */

/** The `demo` table after `insert` of {"hello":"world","path":"a/b","obj":{},"list":[1,2]} and `remove` of ["list"]. */
export const DEMO_TABLE = String.raw`{"hello":{"bleachTTL":30,"data":"world","author":"W1"},"path":{"bleachTTL":30,"data":"a\/b","author":"W1"},"obj":{"bleachTTL":30,"data":[],"author":"W1"},"list":{"author":"W1","bleachTTL":30}}
`

/** The answer to a POST of `{}` to a type the router does not have: json-c's empty table. */
export const EMPTY_TABLE_ANSWER = '[]\n'

/** A sync from another router, W2: a higher TTL, a lower TTL, a TTL of 0, and an extra field `v`. */
export const SYNC_FROM_W2 = String.raw`{"hello":{"bleachTTL":31,"data":"newer","author":"W2","v":7},"path":{"bleachTTL":3,"data":"older","author":"W2"},"dead":{"bleachTTL":0,"data":1,"author":"W2"}}`

/** W1's answer to SYNC_FROM_W2: its table after merging it. */
export const SYNC_ANSWER = String.raw`{"hello":{"author":"W2","bleachTTL":31,"data":"newer","v":7},"path":{"bleachTTL":30,"data":"a\/b","author":"W1"},"obj":{"bleachTTL":30,"data":[],"author":"W1"},"list":{"author":"W1","bleachTTL":30}}`

/** A body of the right JSON but the wrong shape, which the Lua code fails on. */
export const WRONG_SHAPE = '{"x":5}'
