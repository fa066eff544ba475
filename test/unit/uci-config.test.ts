import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { isMallaError } from '../../src/core/errors.js'
import { parseUci, peerConfig } from '../../src/node/config/uci-config.js'

test('UCI syntax: sections, options, lists, both quotes, escapes, comments and blank lines', () => {
  const sections = parseUci(
    [
      "package malla",
      '',
      "# a comment",
      "config malla 'main'",
      "\toption port '8080'   # trailing comment",
      '\toption name "node \\"one\\""',
      '\toption data /srv/malla',
      "\toption host 'a'b",
      "\tlist peer 'http://10.0.0.2:8080'",
      '\tlist peer "http://10.0.0.3:8080"',
      "config other",
      "\toption x '#not a comment'",
    ].join('\n'),
  )
  assert.equal(sections.length, 2)
  const [main, other] = sections as [(typeof sections)[0], (typeof sections)[0]]
  assert.equal(main.type, 'malla')
  assert.equal(main.name, 'main')
  assert.deepEqual([...main.options], [['port', '8080'], ['name', 'node "one"'], ['data', '/srv/malla'], ['host', 'ab']])
  assert.deepEqual(main.lists.get('peer'), ['http://10.0.0.2:8080', 'http://10.0.0.3:8080'])
  assert.equal(other.name, undefined)
  assert.equal(other.options.get('x'), '#not a comment')
})

test('each kind of bad UCI input is refused as BAD_INPUT naming the file and line', () => {
  const cases: Array<[string, RegExp]> = [
    ["option port '1'", /f:1: option before any config line/],
    ["config malla\n\toption port '1", /f:2: unterminated single quote/],
    ['config malla\n\toption port "1', /f:2: unterminated double quote/],
    ['config malla\n\tswitch on', /f:2: unknown keyword "switch"/],
    ['config malla\n\toption port', /f:2: option port has no value/],
    ["config malla\n\toption 'po-rt' 1", /f:2: option needs a name/],
    ['config malla\n\toption name my node', /f:2: unexpected "node" after the value of name/],
    ['config', /f:1: config needs a section type/],
    ["config malla 'bad name'", /f:1: bad section name/],
    ['config malla main extra', /f:1: unexpected "extra"/],
  ]
  for (const [text, message] of cases) {
    assert.throws(() => parseUci(text, 'f'), (e: unknown) => isMallaError(e, 'BAD_INPUT') && message.test(e.message), text)
  }
})

test('a malla section maps onto malla peer flags; unknown options, bad switches and a missing section are refused', () => {
  const config = peerConfig(
    "config malla 'main'\n option port '9090'\n option max_body '2097152'\n option stun '0'\n option log 'quiet'\n list peer 'http://a:1'\n list peer 'http://b:2'\n list api_allow '10.13.0.0/16'",
    'f',
  )
  assert.equal(config.enabled, true)
  assert.deepEqual(config.args, ['--port', '9090', '--max-body', '2097152', '--no-stun', '--quiet', '--peer', 'http://a:1', '--peer', 'http://b:2', '--api-allow', '10.13.0.0/16'])
  assert.equal(peerConfig("config malla\n option enabled '0'").enabled, false)
  assert.deepEqual(peerConfig("config malla\n option stun '1'\n option log 'info'").args, [])
  const refused: Array<[string, RegExp]> = [
    ["config malla\n option prot '80'", /unknown option "prot"/],
    ["config malla\n list peers 'http://a:1'", /unknown list "peers"/],
    ["config malla\n option enabled 'maybe'", /option enabled: expected 0 or 1/],
    ["config malla\n option log 'loud'", /option log: expected quiet, info or verbose/],
    ["config other\n option port '80'", /no "config malla" section/],
  ]
  for (const [text, message] of refused) assert.throws(() => peerConfig(text, 'f'), (e: unknown) => isMallaError(e, 'BAD_INPUT') && message.test(e.message), text)
})

test('the shipped /etc/config/malla parses and gives the flags its comments promise', () => {
  const config = peerConfig(readFileSync(new URL('../../packaging/openwrt/malla.config', import.meta.url), 'utf8'), 'malla.config')
  assert.equal(config.enabled, true)
  assert.deepEqual(config.args, ['--port', '8080', '--host', '::', '--data', '/srv/malla', '--discover', 'br-lan'])
})
