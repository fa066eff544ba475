import { channelFixture, memoryPipes } from './channel-fixture.js'
import { syncLinkSuite } from './sync-link-suite.js'

syncLinkSuite('channel link over a pipe in memory', async () => channelFixture(async () => memoryPipes()))
