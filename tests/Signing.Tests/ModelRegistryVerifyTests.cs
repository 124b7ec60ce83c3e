using System.Text;
using System.Text.Json.Nodes;
using ModelCar.MrRegister.Tests;
using ModelCar.TestSupport;

namespace ModelCar.Signing.Tests;

/// <summary>
/// The deploy-side join (issue 18 items 3 and 4), with the PUBLISHED binaries: oci-pack signs and attests to two
/// repositories and reports the signature, attestation and model-file-listing digests; mr-register records them
/// (idempotently) in the in-process Model Registry; registry-push verify --model-registry passes on both signed
/// copies and fails, one line each, on an unsigned copy, a recorded commit, file listing or digest that differs,
/// and on a Model Registry that lies or floods.
/// </summary>
public sealed class ModelRegistryVerifyTests(SharedRegistryFixture fixture) : IClassFixture<SharedRegistryFixture>
{
    private const string Password = "hello";
    private const string ModelName = "granite-test";
    private string Host => fixture.Registry.HostPort;

    private static string Data(string name) => Path.Combine(AppContext.BaseDirectory, "testdata", "cosign", name);

    private static string ErrorLine(ToolResult r)
    {
        Assert.DoesNotContain("   at ", r.StdErr, StringComparison.Ordinal);
        return Assert.Single(r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("registry-push: error: ", StringComparison.Ordinal));
    }

    private sealed record Packed(string Index, string Platform, string FilesDigest, string Signatures, string Attestations, string Pub, string Layout);

    /// <summary>One signed pack, to {Host}/{prefix}/model and {prefix}/internal, plus a layout copy of the same image.</summary>
    private async Task<Packed> PackAsync(TempDir tmp, string prefix)
    {
        var pw = tmp.Combine("cosign.password");
        File.WriteAllText(pw, Password + "\n");
        var pub = tmp.Combine("cosign.pub");
        using (var k = CosignKeys.LoadPrivateKey(Data("pemsigstorekey.key"), () => Encoding.UTF8.GetBytes(Password)))
        {
            File.WriteAllText(pub, k.PublicKey.Pem);
        }
        var model = tmp.Combine("model");
        Directory.CreateDirectory(Path.Combine(model, "sub"));
        File.WriteAllText(Path.Combine(model, "config.json"), "{\"a\":1}");
        File.WriteAllBytes(Path.Combine(model, "sub", "weights.bin"), TestImages.RandomLayers(prefix.Length + 900, 1 << 20)[0]);
        var results = tmp.Combine("results");
        var r = await ToolRunner.RunAsync("oci-pack", ["--model", model, "--base", "scratch", "--allow-no-shell", "--platform", "linux/amd64,linux/arm64",
            "--output", $"docker://{Host}/{prefix}/model:v1", "--output", $"docker://{Host}/{prefix}/internal:v1", "--output", $"oci:{tmp.Combine("layout")}:v1",
            "--sign-key", Data("pemsigstorekey.key"), "--sign-key-password-file", pw, "--tls-verify=false", "--results-dir", results]);
        Assert.True(r.ExitCode == 0, r.ToString());
        string Result(string name) => File.ReadAllText(Path.Combine(results, name));
        var index = Result("IMAGE_DIGEST");
        var files = Result("MODEL_FILES_DIGEST");
        // the listing digest is what coreutils give in the model directory
        var sha = await PeerTools.RunAsync("sh", ["-c", $"cd '{model}' && sha256sum config.json sub/weights.bin | LC_ALL=C sort -k2 | sha256sum"]);
        Assert.Equal("sha256:" + sha.StdOut.Split(' ')[0], files);
        var signatures = Result("SIGNATURE_DIGESTS");
        Assert.Equal(6, signatures.Split(',').Length); // 2 platforms + the index, in each of the 2 registries
        Assert.Equal(2, Result("ATTESTATION_DIGESTS").Split(',').Length);
        var layoutIndex = System.Text.Json.JsonDocument.Parse(File.ReadAllText(tmp.Combine("layout", "index.json")));
        var platform = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(tmp.Combine("layout", "blobs", "sha256", index["sha256:".Length..])))
            .RootElement.GetProperty("manifests")[0].GetProperty("digest").GetString()!;
        return new Packed(index, platform, files, signatures, Result("ATTESTATION_DIGESTS"), pub, tmp.Combine("layout"));
    }

    private static Task<ToolResult> RegisterAsync(FakeModelRegistry fake, string version, string uri, params string[] rest) =>
        Tool.RegisterAsync(fake, ["--model-name", ModelName, "--version-name", version, "--uri", uri, .. rest]);

    private Task<ToolResult> VerifyAsync(FakeModelRegistry fake, string version, string pub, string? image, params string[] rest) =>
        ToolRunner.RunAsync("registry-push", [
            "verify", .. image is null ? Array.Empty<string>() : [image], "--key", pub, "--tls-verify=false",
            "--model-registry", fake.Url.ToString(), "--model-name", ModelName, "--version-name", version, .. rest],
            Tool.Env(), TimeSpan.FromMinutes(2));

    [Fact]
    public async Task Verify_joins_the_attestation_with_the_Model_Registry_on_both_registries_and_refuses_an_unsigned_copy()
    {
        using var tmp = new TempDir();
        var p = await PackAsync(tmp, "mrv");
        await using var fake = await FakeModelRegistry.StartAsync();
        var uri = $"oci://{Host}/mrv/model@{p.Index}";
        string[] signing = ["--image-digest", p.Index, "--model-files-digest", p.FilesDigest, "--signature-digests", p.Signatures, "--attestation-digests", p.Attestations];
        var reg = await RegisterAsync(fake, "v1", uri, signing);
        Assert.True(reg.ExitCode == 0, reg.ToString());
        var props = fake.Artifacts.Single()["customProperties"]!.AsObject();
        Assert.Equal(p.FilesDigest, (string?)props["model-files-digest"]!["string_value"]);
        Assert.Equal(p.Signatures, (string?)props["signature-digests"]!["string_value"]);
        Assert.Equal(p.Attestations, (string?)props["attestation-digests"]!["string_value"]);
        // re-registration with the same values writes nothing
        fake.ClearLog();
        var again = await RegisterAsync(fake, "v1", uri, signing);
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Empty(fake.Writes);

        // no IMAGE: the registered uri is verified
        var results = tmp.Combine("verify-results");
        var ok = await VerifyAsync(fake, "v1", p.Pub, null, "--results-dir", results);
        Assert.True(ok.ExitCode == 0, ok.ToString());
        Assert.Equal(uri, File.ReadAllText(Path.Combine(results, "MODEL_URI")));
        Assert.Equal("", File.ReadAllText(Path.Combine(results, "VERIFIED_COMMIT")));
        // the internal registry's copy (same digest, its own signatures)
        var inside = await VerifyAsync(fake, "v1", p.Pub, $"docker://{Host}/mrv/internal@{p.Index}", "--results-dir", results);
        Assert.True(inside.ExitCode == 0, inside.ToString());
        Assert.Equal($"oci://{Host}/mrv/internal@{p.Index}", File.ReadAllText(Path.Combine(results, "MODEL_URI")));

        // an unsigned copy of the same image (pushed without a key): exit 1, "unsigned"
        var copy = await ToolRunner.RunAsync("registry-push", ["--source", $"oci:{p.Layout}:v1", "--dest", $"docker://{Host}/mrv/unsigned:v1", "--tls-verify=false"]);
        Assert.True(copy.ExitCode == 0, copy.ToString());
        var unsigned = await VerifyAsync(fake, "v1", p.Pub, $"docker://{Host}/mrv/unsigned@{p.Index}");
        Assert.Equal(1, unsigned.ExitCode);
        Assert.Contains("is unsigned", ErrorLine(unsigned), StringComparison.Ordinal);

        // a key that never signed it
        var wrong = await VerifyAsync(fake, "v1", Data("ecdsa_pub.pem"), null);
        Assert.Equal(1, wrong.ExitCode);
        Assert.Contains("wrong key", ErrorLine(wrong), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_fails_naming_the_commit_the_file_listing_or_the_digest_the_Model_Registry_recorded_otherwise()
    {
        using var tmp = new TempDir();
        var p = await PackAsync(tmp, "mrd");
        await using var fake = await FakeModelRegistry.StartAsync();
        var uri = $"oci://{Host}/mrd/model@{p.Index}";
        Assert.Equal(0, (await RegisterAsync(fake, "commit", uri, "--hf-commit", "0123abc", "--model-files-digest", p.FilesDigest)).ExitCode);
        Assert.Equal(0, (await RegisterAsync(fake, "files", uri, "--model-files-digest", "sha256:" + new string('0', 64))).ExitCode);
        Assert.Equal(0, (await RegisterAsync(fake, "nofiles", uri)).ExitCode);
        Assert.Equal(0, (await RegisterAsync(fake, "digest", $"oci://{Host}/mrd/model@{p.Platform}", "--model-files-digest", p.FilesDigest)).ExitCode);
        Assert.Equal(0, (await RegisterAsync(fake, "contradicts", uri, "--image-digest", p.Platform, "--model-files-digest", p.FilesDigest)).ExitCode);

        var commit = await VerifyAsync(fake, "commit", p.Pub, null);
        Assert.Equal(1, commit.ExitCode);
        Assert.Contains("commit differs", ErrorLine(commit), StringComparison.Ordinal);
        Assert.Contains("0123abc", ErrorLine(commit), StringComparison.Ordinal);
        foreach (var version in new[] { "files", "nofiles" })
        {
            var files = await VerifyAsync(fake, version, p.Pub, null);
            Assert.Equal(1, files.ExitCode);
            Assert.Contains("file digest differs", ErrorLine(files), StringComparison.Ordinal);
        }
        // the registered digest is a platform manifest; the index is what is offered for deploy
        var digest = await VerifyAsync(fake, "digest", p.Pub, $"docker://{Host}/mrd/model@{p.Index}");
        Assert.Equal(1, digest.ExitCode);
        Assert.Contains("digest mismatch", ErrorLine(digest), StringComparison.Ordinal);
        var contradicts = await VerifyAsync(fake, "contradicts", p.Pub, null);
        Assert.Equal(1, contradicts.ExitCode);
        Assert.Contains("contradicts itself", ErrorLine(contradicts), StringComparison.Ordinal);
        var missing = await VerifyAsync(fake, "no-such-version", p.Pub, null);
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("does not exist", missing.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_Model_Registry_that_lies_about_ids_or_floods_fails_one_line_without_verifying()
    {
        using var tmp = new TempDir();
        var p = await PackAsync(tmp, "mrh");
        await using var fake = await FakeModelRegistry.StartAsync();
        var uri = $"oci://{Host}/mrh/model@{p.Index}";
        Assert.Equal(0, (await RegisterAsync(fake, "v1", uri, "--model-files-digest", p.FilesDigest)).ExitCode);
        var other = fake.AddModel("someone-elses-model");
        var foreign = fake.AddVersion(other, "v1");
        fake.AddArtifact(foreign, "x", uri, new JsonObject { ["model-files-digest"] = new JsonObject { ["metadataType"] = "MetadataStringValue", ["string_value"] = p.FilesDigest } });

        // the version lookup answers the other model's version (its artifact would verify!)
        fake.Fault = req => req.Method == "GET" && req.Path == FakeModelRegistry.Prefix + "/model_version"
            ? new FakeReply(200, new JsonObject { ["id"] = foreign, ["name"] = "v1", ["registeredModelId"] = other }.ToJsonString())
            : null;
        var lying = await VerifyAsync(fake, "v1", p.Pub, null);
        Assert.Equal(1, lying.ExitCode);
        Assert.Contains("not the version asked for", ErrorLine(lying), StringComparison.Ordinal);

        // an endless artifact listing body: bounded, one line, no image request needed to fail
        fake.Fault = req => req.Method == "GET" && req.Path.EndsWith("/artifacts", StringComparison.Ordinal)
            ? new FakeReply(200, "{\"items\":[" + string.Join(",", Enumerable.Repeat("{\"id\":\"1\",\"artifactType\":\"model-artifact\",\"uri\":\"" + new string('x', 4096) + "\"}", 20_000)) + "],\"nextPageToken\":\"\",\"size\":20000,\"pageSize\":20000}")
            : null;
        var flood = await VerifyAsync(fake, "v1", p.Pub, null);
        Assert.Equal(1, flood.ExitCode);
        ErrorLine(flood);
    }
}
