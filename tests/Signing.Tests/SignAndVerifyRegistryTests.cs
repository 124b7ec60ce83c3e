using System.Net;
using System.Text;
using System.Text.Json;
using ModelCar.Oci;
using ModelCar.Signing.Verification;
using ModelCar.TestSupport;

namespace ModelCar.Signing.Tests;

/// <summary>
/// The published registry-push and oci-pack with --sign-key against the real distribution registry,
/// signing with cosign's own encrypted test key; what they push is read back over plain HTTP and
/// judged by openssl and by containers/image's payload rules, then by registry-push verify.
/// </summary>
public sealed class SignAndVerifyRegistryTests(SharedRegistryFixture fixture) : IClassFixture<SharedRegistryFixture>
{
    private const string Password = "hello";
    private string Host => fixture.Registry.HostPort;

    private static string Data(string name) => Path.Combine(AppContext.BaseDirectory, "testdata", "cosign", name);

    private static Task<ToolResult> Push(params string[] args) => ToolRunner.RunAsync("registry-push", args);

    /// <summary>cosign's encrypted key (ENCRYPTED SIGSTORE PRIVATE KEY), its password in a file with a newline as `echo` writes it, and its public key.</summary>
    private static (string Key, string PasswordFile, string PublicKey) CosignKey(TempDir tmp)
    {
        var pw = tmp.Combine("cosign.password");
        File.WriteAllText(pw, Password + "\n");
        var pub = tmp.Combine("cosign.pub");
        using (var key = CosignKeys.LoadPrivateKey(Data("pemsigstorekey.key"), () => Encoding.UTF8.GetBytes(Password)))
        {
            File.WriteAllText(pub, key.PublicKey.Pem);
        }
        return (Data("pemsigstorekey.key"), pw, pub);
    }

    private static (string Key, string PublicKey) PlainKey(TempDir tmp)
    {
        var pub = tmp.Combine("other.pub");
        using (var key = CosignKeys.LoadPrivateKey(Data("validecpkcs8.key"), () => []))
        {
            File.WriteAllText(pub, key.PublicKey.Pem);
        }
        return (Data("validecpkcs8.key"), pub);
    }

    private (string Index, IReadOnlyList<string> Platforms, string Layout) MultiArch(TempDir tmp, int seed)
    {
        var (index, _, children) = TestImages.WriteIndexLayout(tmp.Combine("layout"), "v1",
            ("amd64", TestImages.RandomLayers(seed, 4000, 5000)), ("arm64", TestImages.RandomLayers(seed + 1, 3000)));
        return (index, children.Select(c => c.ManifestDigest).ToList(), tmp.Combine("layout"));
    }

    private async Task<(JsonDocument Manifest, byte[] Raw)?> GetManifestAsync(string repo, string reference)
    {
        using var http = new HttpClient();
        using var req = new HttpRequestMessage(HttpMethod.Get, $"{fixture.Registry.BaseUri}v2/{repo}/manifests/{reference}");
        req.Headers.TryAddWithoutValidation("Accept", MediaTypes.ManifestAccept);
        using var resp = await http.SendAsync(req);
        if (resp.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
        resp.EnsureSuccessStatusCode();
        var raw = await resp.Content.ReadAsByteArrayAsync();
        return (JsonDocument.Parse(raw), raw);
    }

    private async Task<byte[]> GetBlobAsync(string repo, string digest)
    {
        using var http = new HttpClient();
        var bytes = await http.GetByteArrayAsync($"{fixture.Registry.BaseUri}v2/{repo}/blobs/{digest}");
        Assert.Equal(digest, TestImages.Sha256(bytes));
        return bytes;
    }

    private async Task<List<string>?> TagsAsync(string repo)
    {
        using var http = new HttpClient();
        using var resp = await http.GetAsync($"{fixture.Registry.BaseUri}v2/{repo}/tags/list");
        if (resp.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
        using var doc = JsonDocument.Parse(await resp.Content.ReadAsByteArrayAsync());
        return doc.RootElement.GetProperty("tags").ValueKind == JsonValueKind.Array ? doc.RootElement.GetProperty("tags").EnumerateArray().Select(t => t.GetString()!).ToList() : [];
    }

    /// <summary>The .sig of <paramref name="digest"/>: each layer's payload and signature, checked against cosign's manifest shape.</summary>
    private async Task<List<(byte[] Payload, byte[] Signature)>> SignaturesAsync(string repo, string digest)
    {
        var got = await GetManifestAsync(repo, digest.Replace(":", "-", StringComparison.Ordinal) + ".sig");
        Assert.True(got is not null, $"no .sig for {repo}@{digest}");
        var m = got.Value.Manifest.RootElement;
        Assert.Equal(MediaTypes.ImageManifest, m.GetProperty("mediaType").GetString());
        Assert.Equal("application/vnd.oci.image.config.v1+json", m.GetProperty("config").GetProperty("mediaType").GetString());
        var config = JsonDocument.Parse(await GetBlobAsync(repo, m.GetProperty("config").GetProperty("digest").GetString()!));
        var result = new List<(byte[], byte[])>();
        var diffIds = config.RootElement.GetProperty("rootfs").GetProperty("diff_ids").EnumerateArray().Select(d => d.GetString()).ToList();
        foreach (var layer in m.GetProperty("layers").EnumerateArray())
        {
            Assert.Equal("application/vnd.dev.cosign.simplesigning.v1+json", layer.GetProperty("mediaType").GetString());
            Assert.Contains(layer.GetProperty("digest").GetString(), diffIds);
            var payload = await GetBlobAsync(repo, layer.GetProperty("digest").GetString()!);
            var sig = Convert.FromBase64String(layer.GetProperty("annotations").GetProperty("dev.cosignproject.cosign/signature").GetString()!);
            result.Add((payload, sig));
        }
        return result;
    }

    [Fact]
    public async Task Registry_push_signs_every_platform_and_the_index_in_every_registry_and_verify_accepts_it()
    {
        using var tmp = new TempDir();
        var (key, pw, pub) = CosignKey(tmp);
        var (index, platforms, layout) = MultiArch(tmp, 301);
        var r = await Push("--source", $"oci:{layout}:v1", "--dest", $"docker://{Host}/signed/model:v1", "--dest", $"docker://{Host}/signed/copy:v1",
            "--sign-key", key, "--sign-key-password-file", pw, "--tls-verify=false", "--verbose");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.DoesNotContain(Password, r.StdErr.Replace("hello-", "", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.DoesNotContain("eyJrZGYi", r.StdErr + r.StdOut, StringComparison.Ordinal);

        foreach (var repo in new[] { "signed/model", "signed/copy" })
        {
            foreach (var digest in platforms.Append(index))
            {
                var (payload, sig) = Assert.Single(await SignaturesAsync(repo, digest));
                Assert.True(KeyAndFormatTests.OpensslVerifies(File.ReadAllText(pub), payload, sig), $"{repo}@{digest}: openssl rejects the signature");
                var (parsed, error) = SigstorePayloadRules.Parse(payload);
                Assert.True(error is null, error);
                Assert.Equal(digest, parsed!.ManifestDigest.ToString());
                Assert.Equal($"{Host}/{repo}", parsed.DockerReference);
            }
            // the attestation of the index: DSSE over an in-toto statement naming the index and both platforms
            var att = await GetManifestAsync(repo, index.Replace(":", "-", StringComparison.Ordinal) + ".att");
            Assert.True(att is not null, $"no .att in {repo}");
            var layer = Assert.Single(att.Value.Manifest.RootElement.GetProperty("layers").EnumerateArray());
            Assert.Equal("application/vnd.dsse.envelope.v1+json", layer.GetProperty("mediaType").GetString());
            Assert.Equal("https://slsa.dev/provenance/v1", layer.GetProperty("annotations").GetProperty("predicateType").GetString());
            using var envelope = JsonDocument.Parse(await GetBlobAsync(repo, layer.GetProperty("digest").GetString()!));
            var body = Convert.FromBase64String(envelope.RootElement.GetProperty("payload").GetString()!);
            var dsseSig = Convert.FromBase64String(envelope.RootElement.GetProperty("signatures")[0].GetProperty("sig").GetString()!);
            Assert.True(KeyAndFormatTests.OpensslVerifies(File.ReadAllText(pub), Dsse.Pae("application/vnd.in-toto+json", body), dsseSig));
            using var statement = JsonDocument.Parse(body);
            var subjects = statement.RootElement.GetProperty("subject").EnumerateArray().Select(s => "sha256:" + s.GetProperty("digest").GetProperty("sha256").GetString()).ToList();
            Assert.Equal(platforms.Append(index).Order(), subjects.Order());
        }

        var verify = await Push("verify", $"docker://{Host}/signed/model@{index}", "--key", pub, "--tls-verify=false", "--results-dir", tmp.Combine("results"));
        Assert.True(verify.ExitCode == 0, verify.ToString());
        Assert.Equal($"{Host}/signed/model@{index}", verify.StdOut.Trim());
        Assert.Equal(index, File.ReadAllText(tmp.Combine("results", "VERIFIED_DIGEST")));
        // a platform digest on its own verifies too (what CRI-O checks)
        var one = await Push("verify", $"docker://{Host}/signed/copy@{platforms[1]}", "--key", pub, "--tls-verify=false", "--no-attestation");
        Assert.True(one.ExitCode == 0, one.ToString());

        // a key that never signed: exit 1, one line naming it
        var wrong = await Push("verify", $"docker://{Host}/signed/model@{index}", "--key", Data("ecdsa_pub.pem"), "--tls-verify=false");
        Assert.Equal(1, wrong.ExitCode);
        Assert.Contains("wrong key", wrong.StdErr, StringComparison.Ordinal);
        Assert.Contains("wrong key", Assert.Single(wrong.StdErr.Split('\n'), l => l.StartsWith("registry-push: error:", StringComparison.Ordinal)), StringComparison.Ordinal);

        // the commit check: registry-push's attestation records no Hub revision here
        var commit = await Push("verify", $"docker://{Host}/signed/model@{index}", "--key", pub, "--tls-verify=false", "--expect-commit", "abc123");
        Assert.Equal(1, commit.ExitCode);
        Assert.Contains("commit differs", commit.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Another_keys_signature_is_kept_and_re_signing_with_the_same_key_adds_nothing()
    {
        using var tmp = new TempDir();
        var (key, pw, pub) = CosignKey(tmp);
        var (otherKey, otherPub) = PlainKey(tmp);
        var (index, platforms, layout) = MultiArch(tmp, 311);
        string[] common = ["--source", $"oci:{layout}:v1", "--dest", $"docker://{Host}/twokeys/model:v1", "--tls-verify=false"];
        Assert.Equal(0, (await Push([.. common, "--sign-key", key, "--sign-key-password-file", pw])).ExitCode);
        var second = await Push([.. common, "--sign-key", otherKey, "--attest=false"]);
        Assert.True(second.ExitCode == 0, second.ToString());
        var sigTag = index.Replace(":", "-", StringComparison.Ordinal) + ".sig";
        var before = (await GetManifestAsync("twokeys/model", sigTag))!.Value.Raw;
        Assert.Equal(2, (await SignaturesAsync("twokeys/model", index)).Count);
        Assert.Equal(2, (await SignaturesAsync("twokeys/model", platforms[0])).Count);

        var again = await Push([.. common, "--sign-key", key, "--sign-key-password-file", pw]);
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Equal(before, (await GetManifestAsync("twokeys/model", sigTag))!.Value.Raw);
        Assert.Contains("nothing to add", again.StdErr, StringComparison.Ordinal);

        Assert.Equal(0, (await Push("verify", $"docker://{Host}/twokeys/model@{index}", "--key", pub, "--tls-verify=false")).ExitCode);
        // the second key attested nothing (--attest=false): its signatures verify, its attestation is missing
        Assert.Equal(0, (await Push("verify", $"docker://{Host}/twokeys/model@{index}", "--key", otherPub, "--tls-verify=false", "--no-attestation")).ExitCode);
        var noAtt = await Push("verify", $"docker://{Host}/twokeys/model@{index}", "--key", otherPub, "--tls-verify=false");
        Assert.Equal(1, noAtt.ExitCode);
        Assert.Contains("attestation missing", noAtt.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bad_keys_fail_before_anything_is_pushed()
    {
        using var tmp = new TempDir();
        var (key, _, _) = CosignKey(tmp);
        var image = TestImages.WriteLayout(tmp.Combine("layout"), "v1", TestImages.RandomLayers(321, 2000));
        var wrongPw = tmp.Combine("wrong.password");
        File.WriteAllText(wrongPw, "not-the-password-7731");
        string[] common = ["--source", $"oci:{image.LayoutPath}:v1", "--tls-verify=false"];

        var wrong = await Push([.. common, "--dest", $"docker://{Host}/badkey/wrongpw:v1", "--sign-key", key, "--sign-key-password-file", wrongPw, "--verbose"]);
        Assert.Equal(1, wrong.ExitCode);
        Assert.Contains("wrong password", wrong.StdErr, StringComparison.Ordinal);
        Assert.DoesNotContain("not-the-password-7731", wrong.StdErr + wrong.StdOut, StringComparison.Ordinal);
        Assert.Null(await TagsAsync("badkey/wrongpw"));

        var notEc = await Push([.. common, "--dest", $"docker://{Host}/badkey/ed25519:v1", "--sign-key", Data("ed25519.key")]);
        Assert.Equal(2, notEc.ExitCode);
        Assert.Contains("Ed25519", notEc.StdErr, StringComparison.Ordinal);
        Assert.Null(await TagsAsync("badkey/ed25519"));

        var missing = await Push([.. common, "--dest", $"docker://{Host}/badkey/missing:v1", "--sign-key", tmp.Combine("nope.key")]);
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("no such file", missing.StdErr, StringComparison.Ordinal);
        Assert.Null(await TagsAsync("badkey/missing"));
        foreach (var r in new[] { wrong, notEc, missing })
        {
            Assert.Single(r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("registry-push: error:", StringComparison.Ordinal) && l.Contains("--sign-key", StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task A_failed_signature_push_says_pushed_but_unsigned_and_a_re_run_signs_without_uploading_a_blob()
    {
        using var tmp = new TempDir();
        var (key, pw, pub) = CosignKey(tmp);
        var image = TestImages.WriteLayout(tmp.Combine("layout"), "v1", TestImages.RandomLayers(331, 5000, 7000));
        await using var proxy = await FaultProxy.StartAsync(fixture.Registry.BaseUri);
        proxy.Decide = (_, method, path) => method == "PUT" && path.Contains(".sig", StringComparison.Ordinal) ? Fault.Denied : Fault.Forward;
        // without the attestation, so that "no upload at all" is the claim of the re-run
        string[] args = ["--source", $"oci:{image.LayoutPath}:v1", "--dest", $"docker://{proxy.HostPort}/unsigned/model:v1", "--sign-key", key, "--sign-key-password-file", pw, "--attest=false", "--tls-verify=false"];
        var failed = await Push(args);
        Assert.Equal(1, failed.ExitCode);
        Assert.Contains($"the image is pushed to {proxy.HostPort}/unsigned/model@{image.ManifestDigest} but unsigned", failed.StdErr, StringComparison.Ordinal);
        Assert.NotNull(await GetManifestAsync("unsigned/model", image.ManifestDigest));
        var unsigned = await Push("verify", $"docker://{Host}/unsigned/model@{image.ManifestDigest}", "--key", pub, "--tls-verify=false");
        Assert.Equal(1, unsigned.ExitCode);
        Assert.Contains("unsigned", unsigned.StdErr, StringComparison.Ordinal);

        proxy.Decide = (_, _, _) => Fault.Forward;
        while (proxy.Log.TryDequeue(out _))
        {
        }
        var again = await Push(args);
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Contains("0 uploaded", again.StdErr, StringComparison.Ordinal);
        // neither the image's blobs nor the signature's payload and config (they went up before the refused PUT) are uploaded again:
        // the only uploads are the two blobs of the signature's bundle referrer (the empty config {} and the bundle), never pushed before
        Assert.Equal(2, proxy.Log.Count(l => l.StartsWith("POST ", StringComparison.Ordinal) && l.Contains("/blobs/uploads", StringComparison.Ordinal)));
        Assert.Contains(proxy.Log, l => l.StartsWith("PUT ", StringComparison.Ordinal) && l.Contains(".sig", StringComparison.Ordinal));
        // the identity signed is the host the image was pushed to (the proxy): verify there; seen from another host name, matchRepository refuses
        var verify = await Push("verify", $"docker://{proxy.HostPort}/unsigned/model@{image.ManifestDigest}", "--key", pub, "--tls-verify=false", "--no-attestation");
        Assert.True(verify.ExitCode == 0, verify.ToString());
        verify = await Push("verify", $"docker://{Host}/unsigned/model@{image.ManifestDigest}", "--key", pub, "--tls-verify=false", "--no-attestation");
        Assert.Equal(1, verify.ExitCode);
        Assert.Contains("matchRepository", verify.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Oci_pack_signs_and_attests_each_model_files_sha256_without_reading_the_model_again()
    {
        using var tmp = new TempDir();
        var (key, pw, pub) = CosignKey(tmp);
        var model = tmp.Combine("model");
        Directory.CreateDirectory(Path.Combine(model, "sub"));
        var files = new Dictionary<string, byte[]>
        {
            ["config.json"] = "{\"a\":1}"u8.ToArray(),
            ["sub/weights.bin"] = TestImages.RandomLayers(341, 3 << 20)[0],
            ["tokenizer.json"] = "{\"t\":2}"u8.ToArray(),
            [".gitattributes"] = "*.bin filter=lfs"u8.ToArray(),
        };
        foreach (var (path, content) in files)
        {
            File.WriteAllBytes(Path.Combine(model, path), content);
        }
        var r = await ToolRunner.RunAsync("oci-pack", ["--model", model, "--base", "scratch", "--allow-no-shell", "--platform", "linux/amd64,linux/arm64",
            "--output", $"docker://{Host}/packed/model:v1", "--sign-key", key, "--sign-key-password-file", pw, "--tls-verify=false", "--results-dir", tmp.Combine("results"),
            "--model-signature", tmp.Combine("model.sig")],
            new Dictionary<string, string?> { ["TASKRUN_NAME"] = "pack-run-1", ["TASKRUN_UID"] = "uid-42", ["TASKRUN_NAMESPACE"] = "ml" });
        Assert.True(r.ExitCode == 0, r.ToString());
        var index = File.ReadAllText(tmp.Combine("results", "IMAGE_DIGEST"));
        var verify = await Push("verify", $"docker://{Host}/packed/model@{index}", "--key", pub, "--tls-verify=false");
        Assert.True(verify.ExitCode == 0, verify.ToString());

        var att = (await GetManifestAsync("packed/model", index.Replace(":", "-", StringComparison.Ordinal) + ".att"))!.Value.Manifest.RootElement;
        using var envelope = JsonDocument.Parse(await GetBlobAsync("packed/model", att.GetProperty("layers")[0].GetProperty("digest").GetString()!));
        using var statement = JsonDocument.Parse(Convert.FromBase64String(envelope.RootElement.GetProperty("payload").GetString()!));
        var predicate = statement.RootElement.GetProperty("predicate");
        var deps = predicate.GetProperty("buildDefinition").GetProperty("resolvedDependencies").EnumerateArray()
            .ToDictionary(d => d.GetProperty("uri").GetString()!, d => d.GetProperty("digest").GetProperty("sha256").GetString()!);
        foreach (var (path, content) in files)
        {
            // sha256sum of each file, as attested
            Assert.True(deps.TryGetValue(path, out var sha), $"{path} is not attested: {string.Join(", ", deps.Keys)}");
            Assert.Equal(TestImages.Sha256(content), "sha256:" + sha);
        }
        Assert.Equal("ml/pack-run-1/uid-42", predicate.GetProperty("runDetails").GetProperty("metadata").GetProperty("invocationId").GetString());
        Assert.Equal(model, predicate.GetProperty("buildDefinition").GetProperty("externalParameters").GetProperty("model").GetString());

        // model.sig: 0644, judged by npm's @sigstore/verify with model_signing's key hint; each resource's digest is sha256sum's
        var sigPath = tmp.Combine("model.sig");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead, File.GetUnixFileMode(sigPath));
        var modelSig = File.ReadAllBytes(sigPath);
        var verdict = await SigstoreJudge.VerifyAsync(modelSig, File.ReadAllText(pub), "model_signing");
        Assert.True(verdict.Ok, verdict.Raw);
        Assert.Equal(ModelSignature.PredicateType, verdict.Statement!.Value.GetProperty("predicateType").GetString());
        Assert.Equal("model", verdict.Statement.Value.GetProperty("subject")[0].GetProperty("name").GetString());
        var resources = verdict.Statement.Value.GetProperty("predicate").GetProperty("resources").EnumerateArray()
            .ToDictionary(x => x.GetProperty("name").GetString()!, x => x.GetProperty("digest").GetString()!);
        Assert.Equal(files.Keys.Where(k => k != ".gitattributes").Order(), resources.Keys.Order()); // model_signing ignores .gitattributes itself
        foreach (var (path, digest) in resources)
        {
            var sum = await PeerTools.RunAsync("sha256sum", [Path.Combine(model, path)]);
            Assert.Equal(sum.StdOut.Split(' ')[0], digest);
        }
        // one resource digest changed inside the signed payload, the signature kept: refused
        var bundleNode = System.Text.Json.Nodes.JsonNode.Parse(modelSig)!;
        var payload = Encoding.UTF8.GetString(Convert.FromBase64String(bundleNode["dsseEnvelope"]!["payload"]!.GetValue<string>()));
        Assert.Contains(resources["config.json"], payload, StringComparison.Ordinal);
        bundleNode["dsseEnvelope"]!["payload"] = Convert.ToBase64String(Encoding.UTF8.GetBytes(payload.Replace(resources["config.json"], new string('0', 64), StringComparison.Ordinal)));
        var tampered = await SigstoreJudge.VerifyAsync(Encoding.UTF8.GetBytes(bundleNode.ToJsonString()), File.ReadAllText(pub), "model_signing");
        Assert.False(tampered.Ok, tampered.Raw);
        Assert.False((await SigstoreJudge.VerifyAsync(modelSig, File.ReadAllText(Data("ecdsa_pub.pem")), "model_signing")).Ok);
        // the same bytes are a bundle referrer of the index in the registry
        var referrers = await ReferrersAsync("packed/model", index);
        var entry = Assert.Single(referrers, e => e.Annotations.GetValueOrDefault("dev.sigstore.bundle.predicateType") == ModelSignature.PredicateType);
        Assert.Equal(modelSig, await BundleOfAsync("packed/model", entry.Digest, index));
    }

    /// <summary>The referrers of <paramref name="digest"/> as the referrers tag schema lists them (distribution has no referrers API: 404).</summary>
    private async Task<List<(string Digest, string? ArtifactType, Dictionary<string, string> Annotations)>> ReferrersAsync(string repo, string digest)
    {
        using (var http = new HttpClient())
        {
            using var api = await http.GetAsync($"{fixture.Registry.BaseUri}v2/{repo}/referrers/{digest}");
            Assert.Equal(HttpStatusCode.NotFound, api.StatusCode); // so the tag schema is what holds them
        }
        var got = await GetManifestAsync(repo, digest.Replace(":", "-", StringComparison.Ordinal));
        Assert.True(got is not null, $"no referrers tag for {repo}@{digest}");
        var root = got.Value.Manifest.RootElement;
        Assert.Equal(MediaTypes.ImageIndex, root.GetProperty("mediaType").GetString());
        return root.GetProperty("manifests").EnumerateArray().Select(e => (e.GetProperty("digest").GetString()!,
            e.TryGetProperty("artifactType", out var at) ? at.GetString() : null,
            e.TryGetProperty("annotations", out var a) ? a.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!) : new Dictionary<string, string>())).ToList();
    }

    /// <summary>The bundle a referrer manifest holds, after checking cosign v3's shape and that its subject is <paramref name="subject"/>.</summary>
    private async Task<byte[]> BundleOfAsync(string repo, string referrer, string subject)
    {
        var m = (await GetManifestAsync(repo, referrer))!.Value.Manifest.RootElement;
        Assert.Equal(MediaTypes.ImageManifest, m.GetProperty("mediaType").GetString());
        Assert.Equal(SigstoreBundle.MediaType, m.GetProperty("artifactType").GetString());
        Assert.Equal("application/vnd.oci.empty.v1+json", m.GetProperty("config").GetProperty("mediaType").GetString());
        Assert.Equal(subject, m.GetProperty("subject").GetProperty("digest").GetString());
        var layer = Assert.Single(m.GetProperty("layers").EnumerateArray());
        Assert.Equal(SigstoreBundle.MediaType, layer.GetProperty("mediaType").GetString());
        return await GetBlobAsync(repo, layer.GetProperty("digest").GetString()!);
    }

    [Fact]
    public async Task Every_signed_digest_gets_bundle_referrers_that_npm_sigstore_verify_accepts_and_verify_needs_them()
    {
        using var tmp = new TempDir();
        var (key, pw, pub) = CosignKey(tmp);
        var (index, platforms, layout) = MultiArch(tmp, 351);
        string[] args = ["--source", $"oci:{layout}:v1", "--dest", $"docker://{Host}/bundled/model:v1", "--sign-key", key, "--sign-key-password-file", pw, "--tls-verify=false"];
        var r = await Push(args);
        Assert.True(r.ExitCode == 0, r.ToString());
        foreach (var digest in platforms.Append(index))
        {
            var referrers = await ReferrersAsync("bundled/model", digest);
            Assert.All(referrers, e => Assert.Equal(SigstoreBundle.MediaType, e.ArtifactType));
            var expected = digest == index ? new[] { SigstoreBundle.CosignSignPredicateType, InToto.SlsaProvenanceV1 } : [SigstoreBundle.CosignSignPredicateType];
            Assert.Equal(expected.Order(), referrers.Select(e => e.Annotations["dev.sigstore.bundle.predicateType"]).Order());
            foreach (var e in referrers)
            {
                var verdict = await SigstoreJudge.VerifyAsync(await BundleOfAsync("bundled/model", e.Digest, digest), File.ReadAllText(pub), "cosign");
                Assert.True(verdict.Ok, $"{digest} {e.Annotations["dev.sigstore.bundle.predicateType"]}: {verdict.Raw}");
                Assert.Contains(verdict.Statement!.Value.GetProperty("subject").EnumerateArray(), s => "sha256:" + s.GetProperty("digest").GetProperty("sha256").GetString() == digest);
            }
        }
        var tagBefore = (await GetManifestAsync("bundled/model", index.Replace(":", "-", StringComparison.Ordinal)))!.Value.Raw;
        // a re-run adds nothing to the referrers tag
        var again = await Push(args);
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Equal(tagBefore, (await GetManifestAsync("bundled/model", index.Replace(":", "-", StringComparison.Ordinal)))!.Value.Raw);
        Assert.Equal(0, (await Push("verify", $"docker://{Host}/bundled/model@{index}", "--key", pub, "--tls-verify=false")).ExitCode);

        // the referrers tag deleted: the .sig is still there, the bundle is not found: verify fails naming it
        using (var http = new HttpClient())
        {
            using var del = await http.DeleteAsync($"{fixture.Registry.BaseUri}v2/bundled/model/manifests/{TestImages.Sha256(tagBefore)}");
            Assert.Equal(HttpStatusCode.Accepted, del.StatusCode);
        }
        var missing = await Push("verify", $"docker://{Host}/bundled/model@{index}", "--key", pub, "--tls-verify=false");
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("no Sigstore bundle referrer", missing.StdErr, StringComparison.Ordinal);
    }
}
