// SCIM 2.0 test server for the user-import-operator tests: SCIMMY does the
// protocol (filters, PATCH, /Bulk, pagination, ServiceProviderConfig); this
// file is the in-memory storage and the test knobs. Listens on 127.0.0.1
// unless SCIM_HOST names another address.
//
// Environment (all optional):
//   SCIM_PORT (or first argument)       port, 0 picks a free one
//   SCIM_HOST                           address to listen on (127.0.0.1)
//   SCIM_TOKEN                          accepted bearer token
//   SCIM_BASIC_USER, SCIM_BASIC_PASSWORD accepted basic credentials
//   SCIM_OAUTH_CLIENT_ID, SCIM_OAUTH_CLIENT_SECRET
//                                       clients of POST /oauth/token (client
//                                       credentials); issued tokens are accepted
//   SCIM_TLS_CERT, SCIM_TLS_KEY         PEM files: serve HTTPS
//   SCIM_BULK=false                     do not offer /Bulk
//   SCIM_BULK_MAX_OPERATIONS, SCIM_BULK_MAX_PAYLOAD
//   SCIM_PATCH=false                    do not offer PATCH (answers 501)
//   SCIM_MAX_RESULTS                    largest page served (default 200)
//   SCIM_PATCH_MAX_MEMBERS              most members one PATCH of a group
//                                       may add or remove (400 tooMany above)
//   SCIM_FILTER_LITERAL_ESCAPES=true    a /Users filter with an escaped quote
//                                       or backslash finds nobody, as with a
//                                       library that keeps the escapes of a
//                                       quoted value literally
// Prints "SCIM server ready on <url>" once listening.
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import express from "express";
import SCIMMY from "scimmy";
import SCIMMYRouters from "scimmy-routers";

const env = process.env;
const port = Number(process.argv[2] ?? env.SCIM_PORT ?? 0);
const host = env.SCIM_HOST || "127.0.0.1";
const maxResults = Number(env.SCIM_MAX_RESULTS ?? 200);
const users = new Map(); // id -> stored user (plain object)
const groups = new Map(); // id -> stored group (plain object)
const patchMaxMembers = Number(env.SCIM_PATCH_MAX_MEMBERS ?? 0);
let groupPatches = 0;
let bulkRequests = 0;
// id -> {salt, hash}: the write-only password, kept as a real server
// keeps it (scrypt) and never returned.
const passwords = new Map();
const issuedTokens = new Set();

const conflict = (attr) => new SCIMMY.Types.Error(409, "uniqueness", `${attr} is not unique`);
function checkUnique(user, id) {
    const name = String(user.userName ?? "").toLowerCase(); // userName is caseExact=false
    for (const other of users.values()) {
        if (other.id !== id && String(other.userName).toLowerCase() === name) throw conflict("userName");
    }
}

SCIMMY.Resources.declare(SCIMMY.Resources.User.extend(SCIMMY.Schemas.EnterpriseUser, false))
    .ingress((resource, instance) => {
        const plain = JSON.parse(JSON.stringify(instance));
        const now = new Date().toISOString();
        let created = now;
        if (resource.id) {
            const existing = users.get(resource.id);
            if (!existing) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
            created = existing.meta.created;
        }
        const id = resource.id ?? crypto.randomUUID();
        checkUnique(plain, id);
        delete plain.meta;
        // SCIMMY's JSON form leaves out attributes that are never returned:
        // read the password from the instance itself.
        const password = instance.password ?? plain.password;
        if (typeof password === "string" && password !== "") {
            const salt = crypto.randomBytes(16);
            passwords.set(id, {salt, hash: crypto.scryptSync(password, salt, 32)});
        }
        delete plain.password;
        const stored = {...plain, id, meta: {created, lastModified: now}};
        users.set(id, stored);
        return stored;
    })
    .egress((resource) => {
        if (resource.id) {
            const user = users.get(resource.id);
            if (!user) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
            return user;
        }
        // A real server bounds its pages; SCIMMY paginates what it is given.
        if (resource.constraints?.count > maxResults) resource.constraints.count = maxResults;
        const all = [...users.values()];
        return resource.filter ? resource.filter.match(all) : all;
    })
    .degress((resource) => {
        passwords.delete(resource.id);
        if (!users.delete(resource.id)) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
    });

SCIMMY.Resources.declare(SCIMMY.Resources.Group)
    .ingress((resource, instance) => {
        const plain = JSON.parse(JSON.stringify(instance));
        const now = new Date().toISOString();
        let created = now;
        if (resource.id) {
            const existing = groups.get(resource.id);
            if (!existing) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
            created = existing.meta.created;
        }
        const id = resource.id ?? crypto.randomUUID();
        const name = String(plain.displayName ?? "").toLowerCase();
        for (const other of groups.values()) {
            if (other.id !== id && String(other.displayName).toLowerCase() === name) throw conflict("displayName");
        }
        delete plain.meta;
        const stored = {...plain, id, meta: {created, lastModified: now}};
        groups.set(id, stored);
        return stored;
    })
    .egress((resource) => {
        if (resource.id) {
            const group = groups.get(resource.id);
            if (!group) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
            return group;
        }
        if (resource.constraints?.count > maxResults) resource.constraints.count = maxResults;
        const all = [...groups.values()];
        return resource.filter ? resource.filter.match(all) : all;
    })
    .degress((resource) => {
        if (!groups.delete(resource.id)) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
    });

function authenticate(req) {
    const token = env.SCIM_TOKEN, user = env.SCIM_BASIC_USER, oauth = env.SCIM_OAUTH_CLIENT_ID;
    if (!token && !user && !oauth) return "anonymous";
    const header = req.header("Authorization") ?? "";
    if (header.startsWith("Bearer ")) {
        const presented = header.slice(7);
        if ((token && presented === token) || issuedTokens.has(presented)) return "client";
    } else if (header.startsWith("Basic ") && user) {
        const [u, ...p] = Buffer.from(header.slice(6), "base64").toString().split(":");
        if (u === user && p.join(":") === env.SCIM_BASIC_PASSWORD) return u;
    }
    throw new Error("Authorization failed");
}

const scheme = env.SCIM_OAUTH_CLIENT_ID ? "oauth" : env.SCIM_BASIC_USER && !env.SCIM_TOKEN ? "basic" : "bearer";
const router = new SCIMMYRouters({type: scheme, handler: authenticate});
// SCIMMYRouters turns everything on; advertise what this server is asked to offer.
SCIMMY.Config.set({
    sort: false,
    patch: env.SCIM_PATCH !== "false",
    filter: {supported: true, maxResults},
    bulk: env.SCIM_BULK === "false" ? false : {
        supported: true,
        maxOperations: Number(env.SCIM_BULK_MAX_OPERATIONS ?? 1000),
        maxPayloadSize: Number(env.SCIM_BULK_MAX_PAYLOAD ?? 1048576),
    },
});

const app = express();
app.post("/oauth/token", express.urlencoded({extended: false}), (req, res) => {
    let {client_id: id, client_secret: secret, grant_type: grant} = req.body ?? {};
    const header = req.header("Authorization") ?? "";
    if (header.startsWith("Basic ")) { // RFC 6749 2.3.1: credentials may come as basic auth
        const [u, ...p] = Buffer.from(header.slice(6), "base64").toString().split(":");
        id = decodeURIComponent(u); secret = decodeURIComponent(p.join(":"));
    }
    if (grant !== "client_credentials") return res.status(400).json({error: "unsupported_grant_type"});
    if (!env.SCIM_OAUTH_CLIENT_ID || id !== env.SCIM_OAUTH_CLIENT_ID || secret !== env.SCIM_OAUTH_CLIENT_SECRET) {
        return res.status(401).json({error: "invalid_client"});
    }
    const token = crypto.randomBytes(24).toString("hex");
    issuedTokens.add(token);
    res.json({access_token: token, token_type: "Bearer", expires_in: 3600});
});
if (env.SCIM_PATCH === "false") {
    app.patch("/Users/:id", (req, res) => res.status(501).type("application/scim+json")
        .send(new SCIMMY.Messages.Error({status: 501, message: "PATCH not supported"})));
}
// Listing users: SCIMMY converts every stored user through its schema
// (about 9 ms each) before it pages; filter and page first, and render
// the stored users (already in SCIMMY's output form) directly.
app.get("/Users", (req, res, next) => {
    if (["attributes", "excludedAttributes", "sortBy"].some((k) => k in req.query)) return next();
    try { authenticate(req); } catch { return next(); } // the router answers 401
    let resource;
    try { resource = new SCIMMY.Resources.User(req.query); } catch { return next(); }
    const all = [...users.values()];
    const matched = resource.filter ? resource.filter.match(all) : all;
    const start = Math.max(Number.parseInt(req.query.startIndex ?? "1") || 1, 1);
    const count = Math.min(Math.max(Number.parseInt(req.query.count ?? "20") || 0, 0), maxResults);
    const page = matched.slice(start - 1, start - 1 + count).map((u) => ({
        schemas: ["urn:ietf:params:scim:schemas:core:2.0:User",
            ...(u[SCIMMY.Schemas.EnterpriseUser.id] ? [SCIMMY.Schemas.EnterpriseUser.id] : [])],
        ...u,
        meta: {resourceType: "User", ...u.meta, location: `/Users/${u.id}`},
    }));
    res.type("application/scim+json").send({
        schemas: ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        Resources: page, startIndex: start, itemsPerPage: page.length, totalResults: matched.length,
    });
});
// A server that bounds the members one PATCH of a group changes, as some
// services do (RFC 7644 leaves the limit to the service). PATCHes that only
// add and remove members are applied here, as RFC 7644 3.5.2 says:
// SCIMMY validates every member of the group again on each PATCH, which
// takes seconds for a group of thousands.
const removeFilter = /^members\[value eq "((?:[^"\\]|\\.)*)"\]$/;
const literalEscapes = env.SCIM_FILTER_LITERAL_ESCAPES === "true";
app.get("/Users", (req, res, next) => {
    if (!literalEscapes || !/\\["\\]/.test(String(req.query.filter ?? ""))) return next();
    try { authenticate(req); } catch { return next(); } // the router answers 401
    res.type("application/scim+json").send({schemas: ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        totalResults: 0, startIndex: 1, itemsPerPage: 0, Resources: []});
});
app.patch("/Groups/:id", express.json({type: ["application/scim+json", "application/json"], limit: "50mb"}), (req, res, next) => {
    const ops = req.body?.Operations ?? [];
    let members = 0;
    let simple = ops.length > 0;
    for (const op of ops) {
        const path = String(op.path ?? "");
        const kind = String(op.op ?? "").toLowerCase();
        if (!path.startsWith("members")) { simple = false; continue; }
        members += Array.isArray(op.value) ? op.value.length : 1;
        if (!((kind === "add" && path === "members" && Array.isArray(op.value)) || (kind === "remove" && removeFilter.test(path)))) simple = false;
    }
    if (patchMaxMembers > 0 && members > patchMaxMembers) {
        return res.status(400).type("application/scim+json").send(new SCIMMY.Messages.Error(
            {status: 400, scimType: "tooMany", message: `at most ${patchMaxMembers} members per PATCH`}));
    }
    if (!simple) { groupPatches++; return next(); }
    try { authenticate(req); } catch { return next(); } // the router answers 401
    const group = groups.get(req.params.id);
    if (!group) {
        return res.status(404).type("application/scim+json").send(new SCIMMY.Messages.Error(
            {status: 404, message: `Resource ${req.params.id} not found`}));
    }
    const current = new Map((group.members ?? []).map((m) => [m.value, m]));
    for (const op of ops) {
        if (String(op.op).toLowerCase() === "add") {
            for (const v of op.value) if (v?.value && !current.has(v.value)) current.set(v.value, {value: String(v.value)});
        } else {
            current.delete(JSON.parse(`"${removeFilter.exec(op.path)[1]}"`));
        }
    }
    group.members = [...current.values()];
    group.meta.lastModified = new Date().toISOString();
    groupPatches++;
    res.status(204).end();
});
// Test knob, not SCIM: GET /test/group-patches counts the PATCH requests
// to groups the server accepted, and the /Bulk requests.
app.get("/test/group-patches", (req, res) => res.json({patches: groupPatches, bulks: bulkRequests}));
app.post("/Bulk", (req, res, next) => { bulkRequests++; next(); });
// Listing groups: as for users, page first and render the stored groups.
app.get("/Groups", (req, res, next) => {
    if (["attributes", "excludedAttributes", "sortBy"].some((k) => k in req.query)) return next();
    try { authenticate(req); } catch { return next(); }
    let resource;
    try { resource = new SCIMMY.Resources.Group(req.query); } catch { return next(); }
    const all = [...groups.values()];
    const matched = resource.filter ? resource.filter.match(all) : all;
    const start = Math.max(Number.parseInt(req.query.startIndex ?? "1") || 1, 1);
    const count = Math.min(Math.max(Number.parseInt(req.query.count ?? "20") || 0, 0), maxResults);
    const page = matched.slice(start - 1, start - 1 + count).map((g) => ({
        schemas: ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        ...g,
        meta: {resourceType: "Group", ...g.meta, location: `/Groups/${g.id}`},
    }));
    res.type("application/scim+json").send({
        schemas: ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        Resources: page, startIndex: start, itemsPerPage: page.length, totalResults: matched.length,
    });
});
// Test knob, not SCIM: POST /test/verify-password {userName, password}
// answers 204 when the user's stored password matches, 401 otherwise, so
// that a test proves what the server received without it ever being
// returned.
app.post("/test/verify-password", express.json(), (req, res) => {
    const name = String(req.body?.userName ?? "").toLowerCase();
    const user = [...users.values()].find((u) => String(u.userName).toLowerCase() === name);
    const pw = user && passwords.get(user.id);
    const ok = pw && crypto.timingSafeEqual(pw.hash, crypto.scryptSync(String(req.body?.password ?? ""), pw.salt, 32));
    res.status(ok ? 204 : 401).end();
});
app.use("/", router);

const tls = env.SCIM_TLS_CERT && env.SCIM_TLS_KEY;
const server = tls
    ? https.createServer({cert: fs.readFileSync(env.SCIM_TLS_CERT), key: fs.readFileSync(env.SCIM_TLS_KEY)}, app)
    : http.createServer(app);
server.keepAliveTimeout = 60000;
server.listen(port, host, () => {
    console.log(`SCIM server ready on ${tls ? "https" : "http"}://${host}:${server.address().port}`);
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
