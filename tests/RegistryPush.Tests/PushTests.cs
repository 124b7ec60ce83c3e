using System.Formats.Tar;
using ModelCar.TestSupport;

namespace ModelCar.RegistryPush.Tests;

/// <summary>The published registry-push binary against the real registry container.</summary>
public sealed class PushTests(SharedRegistryFixture fixture) : IClassFixture<SharedRegistryFixture>
{
    private string Host => fixture.Registry.HostPort;

    internal static Task<ToolResult> Push(params string[] args) => ToolRunner.RunAsync("registry-push", args);

    [Fact]
    public async Task Pushes_a_layout_to_two_destinations_then_re_push_is_head_only()
    {
        using var tmp = new TempDir();
        var image = TestImages.WriteLayout(tmp.Combine("layout"), "v1", TestImages.RandomLayers(21, 3 << 20, 200_000, 10));
        var results = tmp.Combine("results");
        var digestFile = tmp.Combine("digest");
        var r = await Push("--source", $"oci:{image.LayoutPath}:v1", "--dest", $"docker://{Host}/team/model:v1", "--dest", $"docker://{Host}/other/copy:1.0",
            "--tls-verify=false", "--results-dir", results, "--digestfile", digestFile);
        Assert.True(r.ExitCode == 0, r.ToString());

        var lines = r.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal([$"{Host}/team/model@{image.ManifestDigest}", $"{Host}/other/copy@{image.ManifestDigest}"], lines);
        Assert.Equal(image.ManifestDigest, File.ReadAllText(Path.Combine(results, "IMAGE_DIGEST")));
        Assert.Equal($"{Host}/team/model:v1", File.ReadAllText(Path.Combine(results, "IMAGE_URL")));
        Assert.Equal(image.ManifestDigest, File.ReadAllText(digestFile));
        // same host: each blob is uploaded once and mounted into the other repository
        // whichever destination gets there first uploads a blob, the other one mounts it
        var summaries = System.Text.RegularExpressions.Regex.Matches(r.StdErr, @"(\d+) blobs already present, (\d+) mounted, (\d+) uploaded");
        Assert.Equal(2, summaries.Count);
        Assert.Equal(4, summaries.Sum(m => int.Parse(m.Groups[3].Value, System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal(4, summaries.Sum(m => int.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture)));

        Assert.Equal(image.ManifestDigest, await Skopeo.InspectDigestAsync($"{Host}/team/model:v1"));
        Assert.Equal(image.ManifestDigest, await Skopeo.InspectDigestAsync($"{Host}/other/copy:1.0"));
        await Skopeo.AssertPullsBackAsync($"{Host}/other/copy:1.0", image, tmp.Path);

        // re-push through a counting proxy: only GET /v2/ and HEAD requests
        await using var proxy = await FaultProxy.StartAsync(fixture.Registry.BaseUri);
        var again = await Push("--source", $"oci:{image.LayoutPath}:v1", "--dest", $"docker://{proxy.HostPort}/team/model:v1", "--tls-verify=false", "--verbose");
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Contains($"{proxy.HostPort}/team/model: 4 blobs already present, 0 mounted, 0 uploaded (0 B); manifest unchanged", again.StdErr);
        Assert.Equal(8, proxy.Requests); // GET /v2/, 4 blob HEADs, 1 manifest HEAD, then the check: HEAD by digest and by tag
        Assert.All(proxy.Log, l => Assert.True(l.StartsWith("HEAD ", StringComparison.Ordinal) || l == "GET /v2/ -> 200", l));
        Assert.DoesNotContain("uploaded (", again.StdErr.Replace("0 uploaded (0 B)", string.Empty, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(TarEntryFormat.Gnu, null)]
    [InlineData(TarEntryFormat.Pax, "1M")]
    public async Task Pushes_an_oci_archive_in_place(TarEntryFormat format, string? chunkSize)
    {
        using var tmp = new TempDir();
        var image = TestImages.WriteLayout(tmp.Combine("layout"), "latest", TestImages.RandomLayers(22, (3 << 20) + 12345, 5000));
        var tar = TestImages.WriteArchive(image.LayoutPath, tmp.Combine("image.tar"), format);
        Directory.Delete(image.LayoutPath, recursive: true); // only the archive remains
        var repo = $"{Host}/archive/{format.ToString().ToLowerInvariant()}";
        string[] args = ["--source", $"oci-archive:{tar}", "--dest", $"docker://{repo}:x", "--tls-verify=false"];
        if (chunkSize is not null)
        {
            args = [.. args, "--chunk-size", chunkSize];
        }
        var r = await Push(args);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal($"{repo}@{image.ManifestDigest}", r.StdOut.Trim());
        if (chunkSize is not null)
        {
            Assert.Contains("chunks of 1.0 MiB", r.StdErr);
        }
        Assert.Equal(image.ManifestDigest, await Skopeo.InspectDigestAsync($"{repo}:x"));
        await Skopeo.AssertPullsBackAsync($"{repo}:x", image, tmp.Path);
    }

    [Fact]
    public async Task Pushes_a_multi_arch_index_children_first()
    {
        using var tmp = new TempDir();
        var (indexDigest, _, children) = TestImages.WriteIndexLayout(tmp.Combine("layout"), "multi",
            ("amd64", TestImages.RandomLayers(23, 100_000)), ("arm64", TestImages.RandomLayers(24, 120_000)));
        var repo = $"{Host}/multi/arch";
        var r = await Push("--source", $"oci:{tmp.Combine("layout")}", "--dest", $"docker://{repo}:m", "--tls-verify=false");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal($"{repo}@{indexDigest}", r.StdOut.Trim());
        var raw = await Skopeo.InspectRawAsync($"{repo}:m");
        Assert.Contains("application/vnd.oci.image.index.v1+json", raw);
        Assert.Equal(indexDigest, TestImages.Sha256(System.Text.Encoding.UTF8.GetBytes(raw)));
        foreach (var child in children)
        {
            Assert.Equal(child.ManifestDigest, await Skopeo.InspectDigestAsync($"{repo}@{child.ManifestDigest}"));
            await Skopeo.AssertPullsBackAsync($"{repo}@{child.ManifestDigest}", child, tmp.Path);
        }
    }

    [Fact]
    public async Task A_password_in_a_dest_url_is_not_echoed_in_usage_errors()
    {
        using var tmp = new TempDir();
        var image = TestImages.WriteLayout(tmp.Combine("layout"), "v1", TestImages.RandomLayers(26, 1000));
        foreach (var dest in new[] { $"docker://u:PASS-dest-991@{Host}/org/m:v1:extra", "docker://u:PASS-dest-991@/org/m" })
        {
            var r = await Push("--source", $"oci:{image.LayoutPath}:v1", "--dest", dest, "--tls-verify=false");
            Assert.Equal(2, r.ExitCode);
            Assert.Contains("docker://***@", r.StdErr);
            Assert.DoesNotContain("PASS-dest-991", r.AllOutput);
        }
    }

    [Fact]
    public async Task Bad_inputs_fail_with_one_clear_line_and_exit_code()
    {
        using var tmp = new TempDir();
        var image = TestImages.WriteLayout(tmp.Combine("layout"), "v1", TestImages.RandomLayers(25, 50_000, 60_000));
        var dest = $"docker://{Host}/bad/inputs:v1";

        var missing = await Push("--source", $"oci:{tmp.Combine("nope")}", "--dest", dest, "--tls-verify=false");
        Assert.Equal(1, missing.ExitCode);
        Assert.Equal($"registry-push: error: OCI layout '{tmp.Combine("nope")}' does not exist", missing.StdErr.Trim());

        var missingArchive = await Push("--source", $"oci-archive:{tmp.Combine("nope.tar")}", "--dest", dest, "--tls-verify=false");
        Assert.Equal(1, missingArchive.ExitCode);
        Assert.Equal($"registry-push: error: oci-archive '{tmp.Combine("nope.tar")}' does not exist", missingArchive.StdErr.Trim());

        var noRef = await Push("--source", $"oci:{image.LayoutPath}:v2", "--dest", dest, "--tls-verify=false");
        Assert.Equal(1, noRef.ExitCode);
        Assert.Contains($"oci:{image.LayoutPath}: no image with reference 'v2' (refs: v1)", noRef.StdErr);

        var badDest = await Push("--source", $"oci:{image.LayoutPath}", "--dest", $"docker://{Host}/Bad Repo:v1");
        Assert.Equal(2, badDest.ExitCode);
        Assert.Contains("--dest:", badDest.StdErr);
        Assert.Contains("is not valid", badDest.StdErr);

        var notDocker = await Push("--source", $"oci:{image.LayoutPath}", "--dest", $"{Host}/repo:v1");
        Assert.Equal(2, notDocker.ExitCode);
        Assert.Contains("use docker://HOST[:PORT]/REPO[:TAG]", notDocker.StdErr);

        var badSource = await Push("--source", $"dir:{image.LayoutPath}", "--dest", dest);
        Assert.Equal(2, badSource.ExitCode);
        Assert.Contains("is not a supported image reference", badSource.StdErr);

        var noDest = await Push("--source", $"oci:{image.LayoutPath}");
        Assert.Equal(2, noDest.ExitCode);
        Assert.Contains("--dest", noDest.StdErr);

        var unreachable = await Push("--source", $"oci:{image.LayoutPath}", "--dest", "docker://127.0.0.1:9/x/y:v1", "--tls-verify=false", "--retries", "1");
        Assert.Equal(1, unreachable.ExitCode);
        Assert.Contains("registry-push: error: registry 127.0.0.1:9 is unreachable", unreachable.StdErr);
        Assert.Contains("Connection refused", unreachable.StdErr);
    }

    [Fact]
    public async Task Broken_sources_are_reported_before_or_instead_of_a_bad_push()
    {
        using var tmp = new TempDir();
        var dest = $"docker://{Host}/bad/source:v1";
        var missingBlob = TestImages.WriteLayout(tmp.Combine("a"), "v1", TestImages.RandomLayers(26, 40_000));
        File.Delete(Path.Combine(missingBlob.LayoutPath, "blobs", "sha256", missingBlob.Layers[0].Digest["sha256:".Length..]));
        var r1 = await Push("--source", $"oci:{missingBlob.LayoutPath}", "--dest", dest, "--tls-verify=false");
        Assert.Equal(1, r1.ExitCode);
        Assert.Contains($"blob {missingBlob.Layers[0].Digest} is missing", r1.StdErr);

        var corrupt = TestImages.WriteLayout(tmp.Combine("b"), "v1", TestImages.RandomLayers(27, 40_000));
        var layerPath = Path.Combine(corrupt.LayoutPath, "blobs", "sha256", corrupt.Layers[0].Digest["sha256:".Length..]);
        var bytes = File.ReadAllBytes(layerPath);
        bytes[100] ^= 0xFF;
        File.WriteAllBytes(layerPath, bytes);
        var r2 = await Push("--source", $"oci:{corrupt.LayoutPath}", "--dest", dest, "--tls-verify=false");
        Assert.Equal(1, r2.ExitCode);
        Assert.Contains($"blob {corrupt.Layers[0].Digest}: content digest sha256:", r2.StdErr);
        Assert.Contains($"does not match {corrupt.Layers[0].Digest}", r2.StdErr);
        Assert.Equal(1, r2.StdErr.Split('\n').Count(l => l.Contains("error:", StringComparison.Ordinal)));
        // nothing was tagged
        var inspect = await PeerTools.RunAsync("skopeo", ["inspect", "--tls-verify=false", $"docker://{Host}/bad/source:v1"]);
        Assert.NotEqual(0, inspect.ExitCode);
    }

    [Fact]
    public async Task Too_large_and_denied_answers_fail_at_once_with_the_server_reason()
    {
        using var tmp = new TempDir();
        var image = TestImages.WriteLayout(tmp.Combine("layout"), "v1", TestImages.RandomLayers(28, 300_000));
        await using var proxy = await FaultProxy.StartAsync(fixture.Registry.BaseUri);
        // the request carrying the body is the PATCH (POST, PATCH, PUT ?digest= with an empty body)
        proxy.Decide = (_, m, p) => m == "PATCH" && p.Contains("/blobs/uploads/", StringComparison.Ordinal) ? Fault.TooLarge : Fault.Forward;
        var tooLarge = await Push("--source", $"oci:{image.LayoutPath}", "--dest", $"docker://{proxy.HostPort}/limits/big:v1", "--tls-verify=false", "--jobs", "1");
        Assert.Equal(1, tooLarge.ExitCode);
        // the 413 answers the PATCH (POST, PATCH with the body, PUT ?digest= empty); its Location carries _state=…, masked in the line
        Assert.True(tooLarge.StdErr.Contains(" 413 Payload Too Large (the registry refuses a body this large", StringComparison.Ordinal), tooLarge.ToString());
        Assert.Contains("set --chunk-size", tooLarge.StdErr);
        // not retried: one answer was 413 (matched on the status: an upload's UUID in the path may contain "413" too)
        Assert.Single(proxy.Log, l => l.Contains("-> 413", StringComparison.Ordinal));

        proxy.Decide = (_, m, p) => m == "POST" ? Fault.Denied : Fault.Forward;
        var denied = await Push("--source", $"oci:{image.LayoutPath}", "--dest", $"docker://{proxy.HostPort}/limits/denied:v1", "--tls-verify=false");
        Assert.Equal(1, denied.ExitCode);
        Assert.Contains("403 Forbidden: DENIED: requested access to the resource is denied", denied.StdErr);
        Assert.Equal(1, denied.StdErr.Split('\n').Count(l => l.Contains("error:", StringComparison.Ordinal)));
    }
}
