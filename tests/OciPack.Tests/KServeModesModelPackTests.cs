using System.Security.Cryptography;
using System.Text.Json;
using ModelCar.TestSupport;

namespace ModelCar.OciPack.Tests;

/// <summary>
/// Issue 20 behaviour 3, KServe's storage modes with the ModelPack manifest in the image index (the PUBLISHED binary, pushed
/// to a CNCF distribution registry container; the model is grouped by a small --max-layers so grouped layers are read too):
/// <list type="bullet">
/// <item><c>oci+native</c> (an image volume: the runtime pulls the image, picks the platform manifest and mounts its root file
/// system read-only; KServe mounts <c>subPath: models</c> into the server container, which runs as a random UID with GID 0),
/// judged by Debian's podman 4.3.1 (<c>--mount type=image</c>, overlay store of its own) and containerd 1.6 (<c>ctr image
/// pull</c>, then <c>ctr images mount</c>, the read-only snapshot view the CRI image volume is made of, bind-mounted at its
/// <c>models</c> folder into a container; ctr 1.6 cannot set a container's user, so the random UID reads that view through
/// util-linux setpriv).</item>
/// <item><c>oci+fetch</c> (KServe's storage initializer: the first <c>linux/&lt;GOARCH&gt;</c> entry of the index, layers of the
/// accepted tar media types, only names starting <c>models/</c> extracted): its steps, over HTTP from the registry, in Python's
/// tarfile (oras-py, which KServe uses for the HTTP part, is not installable here: PyPI is not reachable).</item>
/// </list>
/// In each, the runtime must not take the ModelPack manifest (unknown/unknown) and every file must read back byte-identical.
/// </summary>
public sealed class KServeModesModelPackTests : IAsyncLifetime
{
    private const string RandomUid = "1000770000:0";
    private readonly TempDir _dir = new("oci-pack-kserve-modes");
    private RegistryContainer _registry = null!;

    public async Task InitializeAsync() => _registry = await new RegistryContainer().StartAsync();

    public async Task DisposeAsync()
    {
        await _registry.DisposeAsync();
        _dir.Dispose();
    }

    private static JsonElement Json(byte[] bytes) => JsonDocument.Parse(bytes).RootElement.Clone();

    private static string Sha(byte[] b) => Convert.ToHexStringLower(SHA256.HashData(b));

    /// <summary>Packs config.json, tokenizer.json, sub/vocab.txt and 3 shards (grouped: 4 layers at most) on busybox with ModelPack, to the registry.</summary>
    private async Task<(string Model, string Image, Dictionary<string, string> Expected)> PackAsync()
    {
        var baseDir = _dir.Combine("base");
        Directory.CreateDirectory(baseDir);
        TestBases.WriteLayout(baseDir, "1", TestBases.BusyboxLayer(), gzip: false);
        _dir.WriteFile("model/config.json", """{"architectures":["LlamaForCausalLM"],"model_type":"llama"}""");
        _dir.WriteFile("model/tokenizer.json", TempDir.RandomBytes(3000, 31));
        _dir.WriteFile("model/sub/vocab.txt", TempDir.RandomBytes(1000, 32));
        for (int i = 1; i <= 3; i++)
        {
            _dir.WriteFile($"model/model-{i:D5}-of-00003.safetensors", TempDir.RandomBytes(8192 * i, 33 + i));
        }
        var model = _dir.Combine("model");
        var image = $"{_registry.HostPort}/kserve/model:v1";
        var r = await ToolRunner.RunAsync("oci-pack", ["--model", model, "--base", $"oci:{baseDir}:1", "--format", "modelcar,modelpack", "--layer-threshold", "4K",
            "--max-layers", "4", "--output", $"docker://{image}", "--tls-verify=false"], new Dictionary<string, string?> { ["SOURCE_DATE_EPOCH"] = null });
        Assert.True(r.ExitCode == 0, r.ToString());
        var expected = Directory.GetFiles(model, "*", SearchOption.AllDirectories)
            .Where(f => !Path.GetRelativePath(model, f).StartsWith('.'))
            .ToDictionary(f => Path.GetRelativePath(model, f), f => Sha(File.ReadAllBytes(f)));
        Assert.Equal(6, expected.Count);

        // the index the runtimes get: the linux/amd64 ModelCar manifest and the ModelPack one (unknown/unknown), a group among the layers
        var index = Json(await Get($"manifests/v1", "application/vnd.oci.image.index.v1+json"));
        var entries = index.GetProperty("manifests").EnumerateArray().ToList();
        Assert.Equal(["linux/amd64", "unknown/unknown"], entries.Select(e => $"{e.GetProperty("platform").GetProperty("os").GetString()}/{e.GetProperty("platform").GetProperty("architecture").GetString()}"));
        var modelCar = Json(await Get($"manifests/{entries[0].GetProperty("digest").GetString()}", "application/vnd.oci.image.manifest.v1+json"));
        Assert.Equal(4, modelCar.GetProperty("layers").GetArrayLength());
        Assert.Contains(modelCar.GetProperty("layers").EnumerateArray(), l => l.TryGetProperty("annotations", out var a) && a.GetProperty("org.opencontainers.image.title").GetString()!.StartsWith("/models (group of 2 files: ", StringComparison.Ordinal));
        return (model, image, expected);
    }

    private async Task<byte[]> Get(string path, string accept)
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(_registry.BaseUri, $"v2/kserve/model/{path}"));
        request.Headers.Accept.ParseAdd(accept);
        using var response = await http.SendAsync(request);
        Assert.True(response.IsSuccessStatusCode, $"GET {path}: {response.StatusCode}");
        return await response.Content.ReadAsByteArrayAsync();
    }

    /// <summary>"HASH  ./PATH" lines of busybox sha256sum → PATH → HASH.</summary>
    private static Dictionary<string, string> Sums(string output) => output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
        .Where(l => l.Contains("  ", StringComparison.Ordinal))
        .Select(l => l.Split("  ", 2)).ToDictionary(p => p[1].StartsWith("./", StringComparison.Ordinal) ? p[1][2..] : p[1], p => p[0]);

    /// <summary>Run in the server container: who it runs as, each file's sha256 under /mnt/models, and whether /mnt/models can be written.</summary>
    private const string ServerScript = "id -u; id -g; cd /mnt/models && /bin/busybox find . -type f -exec /bin/busybox sha256sum {} + ; "
        + "if /bin/busybox touch /mnt/models/written 2>/dev/null; then echo WRITABLE; else echo READ-ONLY; fi";

    private static void AssertServerSaw(string output, Dictionary<string, string> expected, string uid = "1000770000")
    {
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(uid, lines[0]);
        Assert.Equal("0", lines[1]);
        Assert.Equal(expected.OrderBy(p => p.Key, StringComparer.Ordinal), Sums(output).OrderBy(p => p.Key, StringComparer.Ordinal));
        Assert.Equal("READ-ONLY", lines[^1]);
    }

    [Fact]
    public async Task Oci_native_on_podman_mounts_the_platform_image_read_only_and_a_random_uid_reads_every_file()
    {
        var (_, image, expected) = await PackAsync();
        var store = _dir.Combine("podman");
        // every path podman keeps state in is inside its own store (as LayerBudgetPackTests: never the test engine's)
        string[] podman = ["--root", Path.Combine(store, "root"), "--runroot", Path.Combine(store, "run"), "--storage-driver", "overlay",
            "--tmpdir", Path.Combine(store, "tmp"), "--volumepath", Path.Combine(store, "volumes"), "--network-config-dir", Path.Combine(store, "net"),
            "--cgroup-manager", "cgroupfs", "--events-backend", "none"];
        try
        {
            var pull = await PeerTools.RunAsync("podman", [.. podman, "pull", "-q", "--tls-verify=false", $"docker://{image}"]);
            Assert.True(pull.ExitCode == 0, pull.ToString());
            // containers/image took the linux/amd64 ModelCar manifest, not the ModelPack one: the image's config is the ModelCar's
            var inspect = await PeerTools.RunAsync("podman", [.. podman, "image", "inspect", "--format", "{{.Os}}/{{.Architecture}} {{.Config.User}}", image]);
            Assert.True(inspect.ExitCode == 0, inspect.ToString());
            Assert.Equal("linux/amd64 1001", inspect.StdOut.Trim());
            // the model server: the same busybox (the packed image itself), the model image mounted read-only (podman 4.3's
            // image mount has no subpath option: the image's root is mounted and its models folder read, which is what
            // subPath: models selects)
            var run = await PeerTools.RunAsync("podman", [.. podman, "run", "--rm", "--network", "none", "--user", RandomUid,
                "--mount", $"type=image,source={image},destination=/mnt/image", image, "/bin/busybox", "sh", "-c",
                ServerScript.Replace("/mnt/models", "/mnt/image/models", StringComparison.Ordinal)]);
            Assert.True(run.ExitCode == 0, run.ToString());
            AssertServerSaw(run.StdOut, expected);
        }
        finally
        {
            await PeerTools.RunAsync("podman", [.. podman, "system", "reset", "-f"]);
        }
    }

    [Fact]
    public async Task Oci_native_on_containerd_pulls_the_platform_image_and_its_read_only_view_at_models_serves_a_random_uid()
    {
        var (_, image, expected) = await PackAsync();
        var view = _dir.Combine("containerd", "view");
        Directory.CreateDirectory(view);
        await Containerd.WithDaemonAsync(_dir.Combine("containerd"), async ctr =>
        {
            var r = await ctr(["images", "pull", "--plain-http", "--platform", "linux/amd64", image]);
            Assert.True(r.ExitCode == 0, r.ToString());
            // only the ModelCar manifest was unpacked (containerd skips unknown/unknown): its config is an image config
            r = await ctr(["images", "mount", "--platform", "linux/amd64", image, view]);
            Assert.True(r.ExitCode == 0, r.ToString());
            try
            {
                // the image volume's subPath models, bind-mounted read-only into the server container (ctr 1.6 run has no
                // --user: it runs as the image's User, 1001, not root; a random UID is checked with setpriv below)
                r = await ctr(["run", "--rm", "--mount", $"type=bind,src={Path.Combine(view, "models")},dst=/mnt/models,options=rbind:ro",
                    image, "server1", "/bin/busybox", "sh", "-c", ServerScript]);
                Assert.True(r.ExitCode == 0, r.ToString());
                AssertServerSaw(r.StdOut, expected, uid: "1001");
                // the random UID (GID 0) of a restricted pod reads every file of the same read-only view (util-linux setpriv)
                r = await PeerTools.RunAsync("setpriv", ["--reuid", "1000770000", "--regid", "0", "--clear-groups", "/bin/busybox", "sh", "-c",
                    ServerScript.Replace("/mnt/models", Path.Combine(view, "models"), StringComparison.Ordinal)]);
                Assert.True(r.ExitCode == 0, r.ToString());
                AssertServerSaw(r.StdOut, expected);
                Assert.False(File.Exists(Path.Combine(view, "models", "written")));
            }
            finally
            {
                await ctr(["images", "unmount", view]);
            }
        });
    }

    [Fact]
    public async Task Oci_fetch_takes_the_linux_amd64_entry_and_extracts_every_models_file_byte_identical()
    {
        var (_, _, expected) = await PackAsync();
        var dest = _dir.Combine("fetched");
        var script = _dir.WriteFile("oci_fetch.py", """
            # KServe's oci+fetch storage initializer, step by step (kserve_storage.py _download_oci): the image index, the first
            # linux/<GOARCH> entry, its manifest, each layer of an accepted media type (+zstd refused, other types skipped),
            # the names starting "models/" extracted; none is an error. HTTP with urllib (oras-py in KServe).
            import io, json, sys, tarfile, urllib.request
            base, repo, ref, dest = sys.argv[1:5]
            def get(path, accept):
                req = urllib.request.Request(f"{base}/v2/{repo}/{path}", headers={"Accept": accept})
                with urllib.request.urlopen(req) as r:
                    return r.read()
            index = json.loads(get(f"manifests/{ref}", "application/vnd.oci.image.index.v1+json"))
            entry = next(m for m in index["manifests"] if m.get("platform", {}).get("os") == "linux" and m["platform"].get("architecture") == "amd64")
            manifest = json.loads(get(f"manifests/{entry['digest']}", "application/vnd.oci.image.manifest.v1+json"))
            accepted = ("application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.docker.image.rootfs.diff.tar.gzip")
            extracted = 0
            for layer in manifest["layers"]:
                if layer["mediaType"].endswith("+zstd"):
                    sys.exit(f"unsupported layer media type {layer['mediaType']}")
                if layer["mediaType"] not in accepted:
                    continue
                with tarfile.open(fileobj=io.BytesIO(get(f"blobs/{layer['digest']}", "*/*")), mode="r:*") as tar:
                    members = [m for m in tar.getmembers() if m.name.startswith("models/")]
                    tar.extractall(dest, members=members, filter="data")
                    extracted += sum(1 for m in members if m.isfile())
            if extracted == 0:
                sys.exit("no models/ files in the image")
            print(extracted)
            """);
        var r = await PeerTools.RunAsync("python3", [script, _registry.BaseUri.ToString().TrimEnd('/'), "kserve/model", "v1", dest]);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal("6", r.StdOut.Trim());
        var fetched = Directory.GetFiles(Path.Combine(dest, "models"), "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(Path.Combine(dest, "models"), f), f => Sha(File.ReadAllBytes(f)));
        Assert.Equal(expected.OrderBy(p => p.Key, StringComparer.Ordinal), fetched.OrderBy(p => p.Key, StringComparer.Ordinal));
    }
}
