using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using ModelCar.Oci;
using ModelCar.Registry;
using ModelCar.Signing.Verification;
using MemoryRegistry = ModelCar.TestSupport.HostileRegistry;

namespace ModelCar.Signing.Tests;

/// <summary>
/// Sigstore bundle referrers: judged by npm's @sigstore/verify (not our code), and pushed and found
/// through an in-memory registry that has no referrers API (tag schema), has one (OCI-Subject), or lies
/// (an index of referrers of another subject, endless or foreign Link pages, a huge page, 404 then 200).
/// </summary>
public sealed class BundleReferrerTests
{
    private static RegistryRepository Repo(MemoryRegistry r, string repository = "org/model") => HostileRegistryTests.Repo(r, repository);

    private static SigningKey OtherKey() => CosignKeys.LoadPrivateKey(Path.Combine(AppContext.BaseDirectory, "testdata", "cosign", "validecpkcs8.key"), () => []);

    private static HttpResponseMessage Json(byte[] body, string? link = null)
    {
        var r = new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(body) };
        r.Content.Headers.ContentType = new MediaTypeHeaderValue(MediaTypes.ImageIndex);
        if (link is not null)
        {
            r.Headers.TryAddWithoutValidation("Link", link);
        }
        return r;
    }

    private static readonly byte[] EmptyIndex = Encoding.UTF8.GetBytes("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[]}");

    private static byte[] Slsa(string identity, Digest d, IReadOnlyList<(Digest, ImageManifest)> _) =>
        InToto.Provenance(new ProvenanceFacts { Subjects = [(identity, d)], ModelFiles = [], ExternalParameters = new Dictionary<string, object>(), BuilderId = "b" });

    // ---- the judge ----

    [Fact]
    public async Task Npm_sigstore_verify_accepts_our_signature_attestation_and_model_bundles_and_rejects_tampering_and_another_key()
    {
        using var key = HostileRegistryTests.Key();
        using var other = OtherKey();
        var digest = Digest.Sha256("manifest"u8);
        var sign = SigstoreBundle.SignStatement(key, SigstoreBundle.CosignSignStatement("reg.example/org/model", digest), SigstoreBundle.CosignHint(key.PublicKey));
        var verdict = await SigstoreJudge.VerifyAsync(sign, key.PublicKey.Pem, "cosign");
        Assert.True(verdict.Ok, verdict.Raw);
        Assert.Equal(digest.Encoded, verdict.Statement!.Value.GetProperty("subject")[0].GetProperty("digest").GetProperty("sha256").GetString());
        Assert.Equal(SigstoreBundle.CosignSignPredicateType, verdict.Statement.Value.GetProperty("predicateType").GetString());

        var slsa = InToto.Provenance(new ProvenanceFacts { Subjects = [("reg.example/org/model", digest)], ModelFiles = [new("a.bin", new string('a', 64))], ExternalParameters = new Dictionary<string, object>(), BuilderId = "b" });
        var att = SigstoreBundle.SignStatement(key, slsa, SigstoreBundle.CosignHint(key.PublicKey));
        verdict = await SigstoreJudge.VerifyAsync(att, key.PublicKey.Pem, "cosign");
        Assert.True(verdict.Ok, verdict.Raw);
        Assert.Equal(InToto.SlsaProvenanceV1, verdict.Statement!.Value.GetProperty("predicateType").GetString());

        var model = ModelSignature.Sign(key, ModelSignature.Statement("m", [new("w.bin", new string('b', 64))], false));
        verdict = await SigstoreJudge.VerifyAsync(model, key.PublicKey.Pem, "model_signing");
        Assert.True(verdict.Ok, verdict.Raw);
        Assert.Equal(ModelSignature.PredicateType, verdict.Statement!.Value.GetProperty("predicateType").GetString());

        // the same bundle, the payload changed (another digest), the signature kept: refused
        var tampered = Encoding.UTF8.GetString(sign).Replace(Convert.ToBase64String(SigstoreBundle.CosignSignStatement("reg.example/org/model", digest)),
            Convert.ToBase64String(SigstoreBundle.CosignSignStatement("reg.example/org/model", Digest.Sha256("other"u8))), StringComparison.Ordinal);
        Assert.NotEqual(Encoding.UTF8.GetString(sign), tampered);
        verdict = await SigstoreJudge.VerifyAsync(Encoding.UTF8.GetBytes(tampered), key.PublicKey.Pem, "cosign");
        Assert.False(verdict.Ok);
        Assert.Contains("signature", verdict.Error, StringComparison.OrdinalIgnoreCase);
        // another key under the hint of ours: the signature does not verify
        var forged = SigstoreBundle.SignStatement(other, SigstoreBundle.CosignSignStatement("reg.example/org/model", digest), SigstoreBundle.CosignHint(key.PublicKey));
        verdict = await SigstoreJudge.VerifyAsync(forged, key.PublicKey.Pem, "cosign");
        Assert.False(verdict.Ok);
        // the wrong key given to the judge: not found under the bundle's hint
        verdict = await SigstoreJudge.VerifyAsync(sign, other.PublicKey.Pem, "cosign");
        Assert.False(verdict.Ok);
        Assert.Contains("key not found", verdict.Error, StringComparison.Ordinal);
        // and our own reader agrees
        Assert.NotNull(SigstoreBundle.Open(sign, key.PublicKey).Statement);
        Assert.Null(SigstoreBundle.Open(Encoding.UTF8.GetBytes(tampered), key.PublicKey).Statement);
        Assert.Null(SigstoreBundle.Open(sign, other.PublicKey).Statement);
    }

    // ---- tag schema (distribution has no referrers API) ----

    [Fact]
    public async Task Without_a_referrers_API_the_tag_schema_index_lists_each_bundle_keeps_foreign_entries_and_a_re_sign_adds_nothing()
    {
        var registry = new MemoryRegistry();
        var digest = Digest.Parse(registry.PutImage("org/model", [11]));
        // a foreign referrer already listed, with a field we do not model
        var foreign = "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:" + new string('f', 64) + "\",\"size\":7,\"artifactType\":\"application/spdx+json\",\"x-vendor\":{\"kept\":true}}";
        var seeded = Encoding.UTF8.GetBytes("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[" + foreign + "]}");
        registry.Manifests["org/model@" + Referrers.FallbackTag(digest)] = (MediaTypes.ImageIndex, seeded);
        using var key = HostileRegistryTests.Key();
        var signed = await new ImageSigner(key, NullLogger.Instance).SignAsync(Repo(registry), digest, Slsa, InToto.SlsaProvenanceV1, CancellationToken.None);
        Assert.All(signed.Bundles, b => Assert.Equal(ReferrersPath.TagSchema, b.Path));
        Assert.Equal(2, signed.Bundles.Count);

        var index = JsonNode.Parse(registry.Manifests["org/model@" + Referrers.FallbackTag(digest)].Content)!;
        var entries = index["manifests"]!.AsArray();
        Assert.Equal(3, entries.Count);
        Assert.Equal(JsonNode.Parse(foreign)!.ToJsonString(), entries[0]!.ToJsonString());
        Assert.All(entries.Skip(1), e => Assert.Equal(SigstoreBundle.MediaType, e!["artifactType"]!.GetValue<string>()));
        Assert.Equal([SigstoreBundle.CosignSignPredicateType, InToto.SlsaProvenanceV1], entries.Skip(1).Select(e => e!["annotations"]![SigstoreBundle.PredicateTypeAnnotation]!.GetValue<string>()).ToArray());
        var before = registry.Manifests["org/model@" + Referrers.FallbackTag(digest)].Content;

        var again = await new ImageSigner(key, NullLogger.Instance).SignAsync(Repo(registry), digest, Slsa, InToto.SlsaProvenanceV1, CancellationToken.None);
        Assert.All(again.Bundles, b => Assert.False(b.Added));
        Assert.Equal(before, registry.Manifests["org/model@" + Referrers.FallbackTag(digest)].Content);
        await new ImageVerifier(Repo(registry), key.PublicKey).VerifyAsync(digest, false, null, CancellationToken.None);

        // another key's signature is added beside ours (kept), and verify still finds ours
        using var other = OtherKey();
        await new ImageSigner(other, NullLogger.Instance).SignAsync(Repo(registry), digest, null, null, CancellationToken.None);
        Assert.Equal(4, JsonNode.Parse(registry.Manifests["org/model@" + Referrers.FallbackTag(digest)].Content)!["manifests"]!.AsArray().Count);
        await new ImageVerifier(Repo(registry), key.PublicKey).VerifyAsync(digest, false, null, CancellationToken.None);
    }

    [Fact]
    public async Task A_referrers_tag_that_is_not_an_index_is_not_overwritten()
    {
        var registry = new MemoryRegistry();
        var digest = Digest.Parse(registry.PutImage("org/model", [12]));
        var image = registry.Manifests["org/model@" + digest.ToString()];
        registry.Manifests["org/model@" + Referrers.FallbackTag(digest)] = image; // someone's image at that tag
        using var key = HostileRegistryTests.Key();
        var e = await Assert.ThrowsAnyAsync<Exception>(() => new ImageSigner(key, NullLogger.Instance).SignAsync(Repo(registry), digest, null, null, CancellationToken.None));
        Assert.Contains("not an OCI image index", e.Message, StringComparison.Ordinal);
        Assert.Equal(image.Content, registry.Manifests["org/model@" + Referrers.FallbackTag(digest)].Content);
    }

    [Fact]
    public async Task Verify_fails_when_the_bundle_referrer_is_missing()
    {
        var registry = new MemoryRegistry();
        var digest = Digest.Parse(registry.PutImage("org/model", [13]));
        using var key = HostileRegistryTests.Key();
        await new ImageSigner(key, NullLogger.Instance).SignAsync(Repo(registry), digest, null, null, CancellationToken.None);
        registry.Manifests.TryRemove("org/model@" + Referrers.FallbackTag(digest), out _);
        var e = await Assert.ThrowsAsync<SigningException>(() => new ImageVerifier(Repo(registry), key.PublicKey).VerifyAsync(digest, false, null, CancellationToken.None));
        Assert.Contains("no Sigstore bundle referrer", e.Message, StringComparison.Ordinal);
        // the .sig alone is what the older check accepted
        await new ImageVerifier(Repo(registry), key.PublicKey) { RequireBundle = false }.VerifyAsync(digest, false, null, CancellationToken.None);
    }

    // ---- a registry with the referrers API ----

    [Fact]
    public async Task With_OCI_Subject_the_registry_indexes_the_referrer_and_no_tag_is_written()
    {
        var registry = new MemoryRegistry { SendOciSubject = true };
        registry.ReferrersApi = (subject, _) => Json(registry.ReferrersOf(subject));
        var digest = Digest.Parse(registry.PutImage("org/model", [21]));
        using var key = HostileRegistryTests.Key();
        var signed = await new ImageSigner(key, NullLogger.Instance).SignAsync(Repo(registry), digest, null, null, CancellationToken.None);
        Assert.Equal(ReferrersPath.Api, Assert.Single(signed.Bundles).Path);
        Assert.False(registry.Manifests.ContainsKey("org/model@" + Referrers.FallbackTag(digest)));
        await new ImageVerifier(Repo(registry), key.PublicKey).VerifyAsync(digest, false, null, CancellationToken.None);
        var again = await new ImageSigner(key, NullLogger.Instance).SignAsync(Repo(registry), digest, null, null, CancellationToken.None);
        Assert.False(Assert.Single(again.Bundles).Added);
    }

    [Fact]
    public async Task A_referrers_API_listing_another_subjects_bundle_is_not_believed()
    {
        var registry = new MemoryRegistry { SendOciSubject = true };
        registry.ReferrersApi = (subject, _) => Json(registry.ReferrersOf(subject));
        var a = Digest.Parse(registry.PutImage("org/model", [31]));
        var b = Digest.Parse(registry.PutImage("org/model", [32]));
        using var key = HostileRegistryTests.Key();
        await new ImageSigner(key, NullLogger.Instance).SignAsync(Repo(registry), a, null, null, CancellationToken.None);
        // b gets a .sig (copied: the tag check is the older one) but the API answers b's referrers with a's bundle
        registry.Manifests["org/model@" + CosignAttachments.Tag(b, "sig")] = registry.Manifests["org/model@" + CosignAttachments.Tag(a, "sig")];
        registry.ReferrersApi = (subject, _) => Json(registry.ReferrersOf(a.ToString()));
        var e = await Assert.ThrowsAsync<SigningException>(() => new ImageVerifier(Repo(registry), key.PublicKey) { }.VerifyAsync(b, false, null, CancellationToken.None));
        Assert.Contains("digest mismatch", e.Message, StringComparison.Ordinal); // the .sig fails first
        var bundleOnly = await Assert.ThrowsAsync<SigningException>(() => new BundleCheck(Repo(registry), key.PublicKey).RunAsync(b));
        Assert.Contains($"has subject {a}", bundleOnly.Message, StringComparison.Ordinal);
        // and the signer does not take a's bundle for b's: it pushes b's own
        var signed = await new ImageSigner(key, NullLogger.Instance).SignAsync(Repo(registry), b, null, null, CancellationToken.None);
        Assert.True(Assert.Single(signed.Bundles).Added);
    }

    [Fact]
    public async Task Endless_referrers_pages_stop_at_the_bound_and_a_next_page_on_another_origin_is_not_followed()
    {
        var registry = new MemoryRegistry();
        var digest = Digest.Parse(registry.PutImage("org/model", [41]));
        int pages = 0;
        registry.ReferrersApi = (subject, req) =>
        {
            pages++;
            return Json(EmptyIndex, $"</v2/org/model/referrers/{subject}?last={pages}>; rel=\"next\"");
        };
        var referrers = new Referrers(Repo(registry), NullLogger.Instance);
        var e = await Assert.ThrowsAsync<RegistryException>(() => referrers.ListAsync(digest, null, CancellationToken.None));
        Assert.Contains($"past {Referrers.MaxPages} pages", e.Message, StringComparison.Ordinal);
        Assert.Equal(Referrers.MaxPages, pages);

        registry.ReferrersApi = (subject, _) => Json(EmptyIndex, $"<https://elsewhere.example/v2/org/model/referrers/{subject}?n=1>; rel=\"next\"");
        e = await Assert.ThrowsAsync<RegistryException>(() => referrers.ListAsync(digest, null, CancellationToken.None));
        Assert.Contains("points its next page elsewhere", e.Message, StringComparison.Ordinal);
        registry.ReferrersApi = (subject, _) => Json(EmptyIndex, "</v2/org/other/referrers/sha256:" + new string('0', 64) + ">; rel=\"next\"");
        e = await Assert.ThrowsAsync<RegistryException>(() => referrers.ListAsync(digest, null, CancellationToken.None));
        Assert.Contains("points its next page elsewhere", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(registry.Requests, r => r.Port != registry.Port || r.Target.Contains("org/other", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_huge_or_malformed_referrers_page_is_refused()
    {
        var registry = new MemoryRegistry();
        var digest = Digest.Parse(registry.PutImage("org/model", [51]));
        var huge = new byte[OciJson.MaxManifestBytes + 10];
        Array.Fill(huge, (byte)' ');
        registry.ReferrersApi = (_, _) => Json(huge);
        var referrers = new Referrers(Repo(registry), NullLogger.Instance);
        var e = await Assert.ThrowsAsync<RegistryException>(() => referrers.ListAsync(digest, null, CancellationToken.None));
        Assert.Contains("larger than", e.Message, StringComparison.Ordinal);
        // the same without a Content-Length (chunked): cut while reading
        registry.ReferrersApi = (_, _) =>
        {
            var r = new HttpResponseMessage(HttpStatusCode.OK) { Content = new StreamContent(new MemoryStream(huge)) };
            return r;
        };
        e = await Assert.ThrowsAsync<RegistryException>(() => referrers.ListAsync(digest, null, CancellationToken.None));
        Assert.Contains("larger than", e.Message, StringComparison.Ordinal);
        registry.ReferrersApi = (_, _) => Json("{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"x\",\"digest\":\"md5:zz\",\"size\":1}]}"u8.ToArray());
        e = await Assert.ThrowsAsync<RegistryException>(() => referrers.ListAsync(digest, null, CancellationToken.None));
        Assert.Contains("not an OCI image index", e.Message, StringComparison.Ordinal);
        var many = "{\"schemaVersion\":2,\"manifests\":[" + string.Join(",", Enumerable.Range(0, Referrers.MaxEntries + 1).Select(i => $"{{\"mediaType\":\"{MediaTypes.ImageManifest}\",\"digest\":\"sha256:{i:x64}\",\"size\":1}}")) + "]}";
        registry.ReferrersApi = (_, _) => Json(Encoding.UTF8.GetBytes(many));
        e = await Assert.ThrowsAsync<RegistryException>(() => referrers.ListAsync(digest, null, CancellationToken.None));
        Assert.Contains($"at most {Referrers.MaxEntries}", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_referrers_API_that_answers_404_then_200_still_finds_the_bundle()
    {
        // no OCI-Subject on the PUT: the tag schema is written; the API appears afterwards and lists it too
        var registry = new MemoryRegistry();
        int calls = 0;
        registry.ReferrersApi = (subject, _) => ++calls == 1 ? new HttpResponseMessage(HttpStatusCode.NotFound) { Content = new ByteArrayContent([]) } : Json(registry.ReferrersOf(subject));
        var digest = Digest.Parse(registry.PutImage("org/model", [61]));
        using var key = HostileRegistryTests.Key();
        var signed = await new ImageSigner(key, NullLogger.Instance).SignAsync(Repo(registry), digest, null, null, CancellationToken.None);
        Assert.Equal(ReferrersPath.TagSchema, Assert.Single(signed.Bundles).Path);
        var listed = await new Referrers(Repo(registry), NullLogger.Instance).ListAsync(digest, SigstoreBundle.MediaType, CancellationToken.None);
        Assert.Equal(ReferrersPath.Api, Assert.Single(listed).FoundBy); // once: API and tag name the same manifest
        await new ImageVerifier(Repo(registry), key.PublicKey).VerifyAsync(digest, false, null, CancellationToken.None);
        var again = await new ImageSigner(key, NullLogger.Instance).SignAsync(Repo(registry), digest, null, null, CancellationToken.None);
        Assert.False(Assert.Single(again.Bundles).Added);
    }

    /// <summary>Only the bundle check of <see cref="ImageVerifier"/>, through <see cref="BundleReferrers.FindAsync"/>.</summary>
    private sealed class BundleCheck(RegistryRepository repository, VerificationKey key)
    {
        public async Task RunAsync(Digest digest)
        {
            var rejected = new List<string>();
            var found = await new BundleReferrers(repository, NullLogger.Instance).FindAsync(new Referrers(repository, NullLogger.Instance), digest, SigstoreBundle.CosignSignPredicateType, key, CancellationToken.None, rejected);
            if (found.Count == 0)
            {
                throw new SigningException(string.Join("; ", rejected), SigningFailure.Unsigned);
            }
        }
    }
}
