using System.Formats.Tar;
using System.Net;
using System.Text.Json;
using ModelCar.TestSupport;

namespace ModelCar.OciPack.Tests;

/// <summary>
/// Issue 21 item 3: "already has this blob / streamed" is kept per output, not per image. With two real
/// registries (Testcontainers) and the PUBLISHED oci-pack: every output holds every blob its manifest names,
/// checked by HEAD against the registry and by stat in the layout / archive (never by the logs).
/// </summary>
public sealed class OutputBookkeepingTests : IAsyncLifetime
{
    private readonly TempDir _dir = new("oci-pack-outputs");
    private RegistryContainer _a = null!;
    private RegistryContainer _b = null!;
    private static readonly HttpClient Http = new();

    public async Task InitializeAsync()
    {
        _a = new RegistryContainer();
        _b = new RegistryContainer();
        await Task.WhenAll(_a.StartAsync(), _b.StartAsync());
    }

    public async Task DisposeAsync()
    {
        await _a.DisposeAsync();
        await _b.DisposeAsync();
        _dir.Dispose();
    }

    private string Model()
    {
        var m = _dir.Combine("model");
        if (!Directory.Exists(m))
        {
            _dir.WriteFile("model/config.json", """{"architectures":["X"]}""");
            _dir.WriteFile("model/model.safetensors", TempDir.RandomBytes((3 << 20) / 2, 91));
        }
        return m;
    }

    private Task<ToolResult> Pack(string stateDir, params string[] outputs) =>
        HostileRegistryPackTests.Pack(["--model", Model(), "--base", "scratch", "--allow-no-shell", "--layer-threshold", "1M", "--state-dir", stateDir,
            "--tls-verify=false", .. outputs.SelectMany(o => new[] { "--output", o })]);

    [Fact]
    public async Task Layout_then_registry_plus_layout_or_archive_puts_every_layer_in_the_registry()
    {
        var state = _dir.Combine("state");
        var l1 = await Pack(state, $"oci:{_dir.Combine("L1")}:v1"); // writes the layer record
        Assert.True(l1.ExitCode == 0, l1.ToString());

        var withLayout = await Pack(state, $"docker://{_a.HostPort}/m/m:1", $"oci:{_dir.Combine("L2")}:v1");
        Assert.True(withLayout.ExitCode == 0, withLayout.ToString());
        var withArchive = await Pack(state, $"docker://{_a.HostPort}/m/arch:1", $"oci-archive:{_dir.Combine("a.tar")}:v1");
        Assert.True(withArchive.ExitCode == 0, withArchive.ToString());
        // a new repository on a registry that has the blobs elsewhere, plus a layout that lacks them
        var newRepo = await Pack(state, $"docker://{_a.HostPort}/fresh/repo:1", $"oci:{_dir.Combine("L3")}:v1");
        Assert.True(newRepo.ExitCode == 0, newRepo.ToString());

        foreach (var output in new[] { $"docker://{_a.HostPort}/m/m:1", $"docker://{_a.HostPort}/m/arch:1", $"docker://{_a.HostPort}/fresh/repo:1",
            $"oci:{_dir.Combine("L2")}:v1", $"oci-archive:{_dir.Combine("a.tar")}:v1", $"oci:{_dir.Combine("L3")}:v1" })
        {
            Assert.Empty(await MissingBlobsAsync(output));
        }
    }

    /// <summary>
    /// Every non-empty mix of {layout, archive, registry A, registry B} × {no record, record, record and the blobs
    /// already in the mix's first output}: each output of the final run holds every blob its manifest names.
    /// </summary>
    [Fact]
    public async Task Every_output_holds_every_blob_its_manifest_names_for_every_mix_of_outputs_and_state()
    {
        var failures = new List<string>();
        int n = 0;
        for (int mask = 1; mask < 16; mask++)
        {
            foreach (var state in new[] { "none", "record", "present" })
            {
                n++;
                var c = $"c{n}";
                var all = new[]
                {
                    $"oci:{_dir.Combine(c, "layout")}:v1",
                    $"oci-archive:{_dir.Combine(c, "image.tar")}:v1",
                    $"docker://{_a.HostPort}/{c}/a:1",
                    $"docker://{_b.HostPort}/{c}/b:1",
                };
                var outputs = Enumerable.Range(0, 4).Where(i => (mask & (1 << i)) != 0).Select(i => all[i]).ToArray();
                var stateDir = _dir.Combine(c, "state");
                if (state == "record")
                {
                    var prep = await Pack(stateDir, $"oci:{_dir.Combine(c, "prep")}:v1");
                    Assert.True(prep.ExitCode == 0, prep.ToString());
                }
                else if (state == "present")
                {
                    // the first output already holds the blobs (under another tag; an archive is rewritten whole), and the record exists
                    var prep = await Pack(stateDir, outputs[0][..outputs[0].LastIndexOf(':')] + ":prep");
                    Assert.True(prep.ExitCode == 0, prep.ToString());
                }
                var r = await Pack(stateDir, outputs);
                if (r.ExitCode != 0)
                {
                    failures.Add($"{string.Join(" ", outputs)} ({state}): {r}");
                    continue;
                }
                foreach (var output in outputs)
                {
                    var missing = await MissingBlobsAsync(output);
                    if (missing.Count > 0)
                    {
                        failures.Add($"{string.Join(" ", outputs)} ({state}): {output} lacks {string.Join(", ", missing)}");
                    }
                }
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    /// <summary>The blobs (config, layers) the output's manifest under its tag names that the output does not hold with their size.</summary>
    private static async Task<List<string>> MissingBlobsAsync(string output)
    {
        var (manifest, has) = output switch
        {
            _ when output.StartsWith("oci-archive:", StringComparison.Ordinal) => FromArchive(output["oci-archive:".Length..]),
            _ when output.StartsWith("oci:", StringComparison.Ordinal) => FromLayout(output["oci:".Length..]),
            _ => await FromRegistryAsync(output["docker://".Length..]),
        };
        var missing = new List<string>();
        using var doc = JsonDocument.Parse(manifest);
        foreach (var blob in doc.RootElement.GetProperty("layers").EnumerateArray().Prepend(doc.RootElement.GetProperty("config")))
        {
            var digest = blob.GetProperty("digest").GetString()!;
            var size = blob.GetProperty("size").GetInt64();
            if (!await has(digest, size))
            {
                missing.Add($"{digest} ({size} bytes)");
            }
        }
        return missing;
    }

    private static (string Path, string Tag) Split(string pathAndTag)
    {
        int colon = pathAndTag.LastIndexOf(':');
        return (pathAndTag[..colon], pathAndTag[(colon + 1)..]);
    }

    private static string DigestForTag(byte[] indexJson, string tag)
    {
        using var index = JsonDocument.Parse(indexJson);
        return index.RootElement.GetProperty("manifests").EnumerateArray()
            .Single(m => m.TryGetProperty("annotations", out var a) && a.TryGetProperty("org.opencontainers.image.ref.name", out var r) && r.GetString() == tag)
            .GetProperty("digest").GetString()!;
    }

    private static (byte[] Manifest, Func<string, long, Task<bool>> Has) FromLayout(string pathAndTag)
    {
        var (dir, tag) = Split(pathAndTag);
        string BlobPath(string digest) => Path.Combine(dir, "blobs", "sha256", digest["sha256:".Length..]);
        var manifest = File.ReadAllBytes(BlobPath(DigestForTag(File.ReadAllBytes(Path.Combine(dir, "index.json")), tag)));
        return (manifest, (digest, size) => Task.FromResult(new FileInfo(BlobPath(digest)) is { Exists: true } f && f.Length == size));
    }

    private static (byte[] Manifest, Func<string, long, Task<bool>> Has) FromArchive(string pathAndTag)
    {
        var (file, tag) = Split(pathAndTag);
        var sizes = new Dictionary<string, long>(StringComparer.Ordinal);
        var small = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        using (var stream = File.OpenRead(file))
        using (var reader = new TarReader(stream))
        {
            while (reader.GetNextEntry() is { } entry)
            {
                var name = entry.Name.TrimStart('.', '/');
                sizes[name] = entry.Length;
                if (entry.Length < 1 << 20 && entry.DataStream is { } data)
                {
                    using var ms = new MemoryStream();
                    data.CopyTo(ms);
                    small[name] = ms.ToArray();
                }
            }
        }
        var manifest = small["blobs/sha256/" + DigestForTag(small["index.json"], tag)["sha256:".Length..]];
        return (manifest, (digest, size) => Task.FromResult(sizes.TryGetValue("blobs/sha256/" + digest["sha256:".Length..], out var s) && s == size));
    }

    private static async Task<(byte[] Manifest, Func<string, long, Task<bool>> Has)> FromRegistryAsync(string reference)
    {
        int slash = reference.IndexOf('/');
        var host = reference[..slash];
        var (repo, tag) = Split(reference[(slash + 1)..]);
        using var get = new HttpRequestMessage(HttpMethod.Get, $"http://{host}/v2/{repo}/manifests/{tag}");
        get.Headers.Accept.ParseAdd("application/vnd.oci.image.manifest.v1+json");
        using var response = await Http.SendAsync(get);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET manifest {reference}: {(int)response.StatusCode}");
        var manifest = await response.Content.ReadAsByteArrayAsync();
        return (manifest, async (digest, size) =>
        {
            using var head = new HttpRequestMessage(HttpMethod.Head, $"http://{host}/v2/{repo}/blobs/{digest}");
            using var r = await Http.SendAsync(head);
            return r.StatusCode == HttpStatusCode.OK && r.Content.Headers.ContentLength == size;
        });
    }
}
