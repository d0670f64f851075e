// Kafka compatibility with kafkajs (a pure-JavaScript client): produce and consume
// uncompressed and gzip, a consumer group with commits, and the admin API.
//
//   NODE_PATH=... node kafkajs_scenarios.js BOOTSTRAP
const { Kafka, CompressionTypes, logLevel } = require('kafkajs')

const bootstrap = process.argv[2]
const kafka = new Kafka({ clientId: 'strata-test', brokers: [bootstrap], logLevel: logLevel.NOTHING })
const fail = (message) => { console.error(`FAIL: ${message}`); process.exit(1) }
const unique = (prefix) => `${prefix}-${Math.random().toString(16).slice(2, 10)}`

async function main () {
  const admin = kafka.admin()
  await admin.connect()
  const topic = unique('js')
  if (!await admin.createTopics({ topics: [{ topic, numPartitions: 3, configEntries: [{ name: 'retention.ms', value: '600000' }] }] })) fail('createTopics returned false')
  if (await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] })) fail('duplicate create returned true')
  if (!(await admin.listTopics()).includes(topic)) fail('topic not listed')

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const sent = new Map()
  for (const [name, codec] of [['none', CompressionTypes.None], ['gzip', CompressionTypes.GZIP]]) {
    const messages = Array.from({ length: 150 }, (_, i) => ({
      key: `k${i}`, value: i % 10 === 0 ? null : `${name}-${i}`, headers: { n: `${i}` }, timestamp: `${1700000000000 + i}`
    }))
    await producer.send({ topic, compression: codec, acks: -1, messages })
    for (const m of messages) sent.set(`${m.value}|${m.headers.n}|${m.timestamp}`, m)
  }
  await producer.disconnect()

  const groupId = unique('jsg')
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const seen = new Set()
  await consumer.run({
    eachMessage: async ({ message }) => {
      const value = message.value === null ? null : message.value.toString()
      seen.add(`${value}|${message.headers.n.toString()}|${message.timestamp}`)
    }
  })
  const deadline = Date.now() + 30000
  while (seen.size < sent.size && Date.now() < deadline) await new Promise(r => setTimeout(r, 200))
  await consumer.disconnect()
  for (const key of sent.keys()) if (!seen.has(key)) fail(`record ${key} not consumed`)

  const offsets = await admin.fetchOffsets({ groupId, topics: [topic] })
  const ends = await admin.fetchTopicOffsets(topic)
  for (const p of offsets[0].partitions) {
    const end = ends.find(e => e.partition === p.partition)
    if (p.offset !== end.high) fail(`committed ${p.offset} != end ${end.high} on partition ${p.partition}`)
  }
  const described = await admin.describeGroups([groupId])
  if (described.groups[0].state !== 'Empty') fail(`group state ${described.groups[0].state}`)
  await admin.createPartitions({ topicPartitions: [{ topic, count: 4 }] })
  const md = await admin.fetchTopicMetadata({ topics: [topic] })
  if (md.topics[0].partitions.length !== 4) fail('partitions not grown')
  const cfg = await admin.describeConfigs({ resources: [{ type: 2, name: topic }], includeSynonyms: false })
  const retention = cfg.resources[0].configEntries.find(e => e.configName === 'retention.ms')
  if (!retention || retention.configValue !== '600000') fail(`retention.ms ${JSON.stringify(retention)}`)
  await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '-1' }] })
  const after = (await admin.fetchTopicOffsets(topic)).find(e => e.partition === 0)
  if (after.low !== after.high) fail(`deleteTopicRecords left ${after.low}..${after.high}`)
  await admin.deleteGroups([groupId])
  await admin.deleteTopics({ topics: [topic] })
  if ((await admin.listTopics()).includes(topic)) fail('topic still listed')
  await admin.disconnect()
  console.log('kafkajs ok')
}

main().catch(e => fail(e.stack || String(e)))
