// The Node SDK side of tests/test_interop.py: create indexes, or print what describeIndex reads.
//   node interop.js <address> create <collection> '<json list of createIndex requests>'
//   node interop.js <address> describe <collection>
// Prints one JSON document on stdout; exits 1 with the error on stderr.
const { MilvusClient } = require('@zilliz/milvus2-sdk-node');

async function main() {
  const [address, command, collection, body] = process.argv.slice(2);
  const client = new MilvusClient({ address });
  try {
    if (command === 'create') {
      const results = [];
      for (const request of JSON.parse(body)) {
        const status = await client.createIndex({ collection_name: collection, ...request });
        if (status.error_code !== 'Success') throw new Error(`createIndex ${JSON.stringify(request)}: ${status.reason}`);
        results.push(status.error_code);
      }
      console.log(JSON.stringify(results));
    } else if (command === 'describe') {
      const reply = await client.describeIndex({ collection_name: collection });
      if (reply.status.error_code !== 'Success') throw new Error(`describeIndex: ${reply.status.reason}`);
      // Only what a client reads back as the index's definition (not build progress).
      const indexes = reply.index_descriptions.map((d) => ({
        index_name: d.index_name,
        field_name: d.field_name,
        params: d.params,
      }));
      indexes.sort((a, b) => (a.index_name < b.index_name ? -1 : 1));
      console.log(JSON.stringify(indexes));
    } else {
      throw new Error(`unknown command ${command}`);
    }
  } finally {
    await client.closeConnection();
  }
}

main().catch((error) => {
  console.error(error.stack || String(error));
  process.exit(1);
});
