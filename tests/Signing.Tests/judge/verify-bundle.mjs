// Verifies a Sigstore bundle with a public key as the only trust material, using npm's
// @sigstore/bundle (parsing + v0.3 validation) and @sigstore/verify (key lookup by the bundle's
// hint, DSSE/message signature check). No Fulcio, no Rekor, no TSA: key-based bundles carry none,
// so the thresholds are 0.
//
//   node verify-bundle.mjs --bundle FILE --key PUBLIC.pem --hint cosign|model_signing [--artifact FILE]
//
// --hint names the convention the key is registered under in the trust material (a bundle naming
// the key another way is rejected: "key not found"): cosign = base64(sha256(DER SPKI)),
// model_signing = hex(sha256(PEM bytes)). Prints one JSON line on stdout:
// {"ok":true,"payloadType":…,"statement":{…}} (DSSE) and exits 0, or {"ok":false,"error":…} and exits 1.
import { readFileSync } from 'node:fs';
import { createHash, createPublicKey } from 'node:crypto';
import { bundleFromJSON } from '@sigstore/bundle';
import { toSignedEntity, toTrustMaterial, Verifier } from '@sigstore/verify';

function arg(name) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : undefined;
}

try {
  const bundlePath = arg('--bundle');
  const keyPath = arg('--key');
  const hintStyle = arg('--hint');
  if (!bundlePath || !keyPath || !['cosign', 'model_signing'].includes(hintStyle)) {
    console.log(JSON.stringify({ ok: false, error: 'usage: --bundle FILE --key PUBLIC.pem --hint cosign|model_signing [--artifact FILE]' }));
    process.exit(2);
  }
  const pem = readFileSync(keyPath);
  const der = createPublicKey(pem).export({ type: 'spki', format: 'der' });
  const hint = hintStyle === 'cosign'
    ? createHash('sha256').update(der).digest('base64')
    : createHash('sha256').update(pem).digest('hex');
  const trust = toTrustMaterial(
    { certificateAuthorities: [], timestampAuthorities: [], tlogs: [], ctlogs: [] },
    { [hint]: { rawBytes: der } },
  );
  const bundle = bundleFromJSON(JSON.parse(readFileSync(bundlePath, 'utf8')));
  const artifactPath = arg('--artifact');
  const entity = toSignedEntity(bundle, artifactPath ? readFileSync(artifactPath) : undefined);
  new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 }).verify(entity);
  const out = { ok: true, mediaType: bundle.mediaType };
  if (bundle.content.$case === 'dsseEnvelope') {
    out.payloadType = bundle.content.dsseEnvelope.payloadType;
    out.statement = JSON.parse(Buffer.from(bundle.content.dsseEnvelope.payload).toString('utf8'));
  }
  console.log(JSON.stringify(out));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: `${e.name}: ${e.message}` }));
  process.exit(1);
}
