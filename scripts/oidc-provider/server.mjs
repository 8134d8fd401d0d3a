// A real OpenID Connect provider (panva/oidc-provider) standing in for ProConnect in tests:
// authorization code with PKCE, ProConnect's scopes and claims (given_name, usual_name, email,
// uid, siret), userinfo as a signed JWT, RP-initiated logout. The one account it knows logs in
// without a form, so the test drives the real protocol without a browser.
//
// Usage: node server.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI POST_LOGOUT_URI ACCOUNT_JSON
import Provider from 'oidc-provider';

const [port, clientId, clientSecret, redirectUri, postLogoutUri, accountJson] = process.argv.slice(2);
const account = JSON.parse(accountJson);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    post_logout_redirect_uris: [postLogoutUri],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_post',
    id_token_signed_response_alg: 'RS256',
    userinfo_signed_response_alg: 'RS256',
  }],
  scopes: ['openid', 'email', 'given_name', 'usual_name', 'uid', 'siret'],
  claims: {
    email: ['email'],
    given_name: ['given_name'],
    usual_name: ['usual_name'],
    uid: ['uid'],
    siret: ['siret'],
  },
  cookies: { keys: ['infoparquet-test-cookie-key'] },
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    jwtUserinfo: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, sub) {
    if (sub !== account.sub) return undefined;
    return { accountId: sub, async claims() { return { ...account }; } };
  },
});

// Logs the one account in and grants what the client asked, then resumes the flow.
provider.use(async (ctx, next) => {
  if (ctx.method === 'GET' && ctx.path.startsWith('/interaction/')) {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const grant = new provider.Grant({ accountId: account.sub, clientId: details.params.client_id });
    grant.addOIDCScope(details.params.scope);
    const grantId = await grant.save();
    await provider.interactionFinished(ctx.req, ctx.res, {
      login: { accountId: account.sub },
      consent: { grantId },
    }, { mergeWithLastSubmission: false });
    return;
  }
  await next();
});

provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
