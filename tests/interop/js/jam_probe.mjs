// Drives the server with jmap-jam (a third-party JavaScript JMAP client) and prints what
// it saw as one JSON object; tests/interop/test_jmap_jam.py checks it.
//
// Environment: JMAP_SESSION_URL, JMAP_TOKEN (Bearer), JMAP_ACCOUNT_ID.
import JamClient from "jmap-jam";

const sessionUrl = process.env.JMAP_SESSION_URL;
const accountId = process.env.JMAP_ACCOUNT_ID;
const jam = new JamClient({ sessionUrl, bearerToken: process.env.JMAP_TOKEN });
const NOTES = "urn:example:jmaptest";

async function attempt(run) {
  try {
    return { ok: await run() };
  } catch (error) {
    // jmap-jam throws method errors, problem details and fetch failures as they are.
    return { thrown: error instanceof Error ? { message: String(error), cause: String(error.cause) } : error };
  }
}

const results = {};

results.session = await attempt(async () => {
  const session = await jam.session;
  return {
    username: session.username,
    apiUrl: session.apiUrl,
    capabilities: Object.keys(session.capabilities),
    core: session.capabilities["urn:ietf:params:jmap:core"],
    primaryAccounts: session.primaryAccounts,
    state: session.state,
  };
});

results.echo = await attempt(async () => {
  const [data, meta] = await jam.api.Core.echo({ hello: true, high: 5, text: "Grüße ☃ 😀" });
  return { data, sessionState: meta.sessionState, status: meta.response.status };
});

results.unknownMethod = await attempt(() => jam.request(["Foo/bar", {}]));

results.accountNotFound = await attempt(() =>
  jam.request(["Note/get", { accountId: "a999999", ids: [] }], { using: [NOTES] }),
);

results.createdIds = await attempt(async () => {
  const [data, meta] = await jam.request(
    ["Note/set", { accountId, create: { k1: { title: "from jmap-jam" } } }],
    { using: [NOTES], createdIds: { earlier: "nearlier" } },
  );
  return { created: data.created, createdIds: meta.createdIds };
});

results.references = await attempt(async () => {
  const [data] = await jam.requestMany(
    (b) => {
      const query = b.Note.query({ accountId, filter: { text: "from jmap-jam" } });
      const get = b.Note.get({ accountId, ids: query.$ref("/ids"), properties: ["title"] });
      const titles = b.Core.echo({ titles: get.$ref("/list/*/title") });
      return { query, get, titles };
    },
    { using: [NOTES] },
  );
  return data;
});

results.problem = await attempt(() =>
  jam.request(["Core/echo", {}], { using: ["https://example.com/apis/foobar"] }),
);

process.stdout.write(JSON.stringify(results));
