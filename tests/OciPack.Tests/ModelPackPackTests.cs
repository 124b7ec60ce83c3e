using System.Diagnostics;
using System.Text.Json;
using ModelCar.TestSupport;

namespace ModelCar.OciPack.Tests;

/// <summary>
/// Issue 20 behaviours 2-3 with the PUBLISHED binary: --format modelcar,modelpack adds exactly a ModelPack config,
/// manifest and the index to what --format modelcar stores (the same layer blobs); skopeo still picks the ModelCar
/// manifest for linux/amd64 and umoci unpacks its /models byte-equal; containerd 1.6 (its own root, state and socket
/// in a temp dir) imports the index and runs the image.
/// </summary>
public sealed class ModelPackPackTests : IDisposable
{
    private readonly TempDir _dir = new("oci-pack-modelpack");

    public void Dispose() => _dir.Dispose();

    private static Task<ToolResult> Pack(params string[] args) =>
        ToolRunner.RunAsync("oci-pack", args, new Dictionary<string, string?> { ["SOURCE_DATE_EPOCH"] = null });

    private static JsonElement Json(byte[] bytes) => JsonDocument.Parse(bytes).RootElement.Clone();

    private static byte[] Blob(string layout, string digest) => File.ReadAllBytes(Path.Combine(layout, "blobs", "sha256", digest["sha256:".Length..]));

    private static HashSet<string> Blobs(string layout) => [.. Directory.GetFiles(Path.Combine(layout, "blobs", "sha256")).Select(f => Path.GetFileName(f))];

    private static async Task<ToolResult> Peer(string tool, params string[] args)
    {
        var r = await PeerTools.RunAsync(tool, args);
        Assert.True(r.ExitCode == 0, $"{tool} {string.Join(' ', args)}\n{r}");
        return r;
    }

    [Fact]
    public async Task Modelpack_adds_only_its_config_and_manifest_and_skopeo_umoci_and_containerd_still_get_the_modelcar()
    {
        var baseDir = _dir.Combine("base");
        Directory.CreateDirectory(baseDir);
        TestBases.WriteLayout(baseDir, "1", TestBases.BusyboxLayer(), gzip: false);
        _dir.WriteFile("model/config.json", """{"architectures":["LlamaForCausalLM"],"model_type":"llama","torch_dtype":"bfloat16"}""");
        _dir.WriteFile("model/model-00001-of-00002.safetensors", TempDir.RandomBytes(3 << 20, 21));
        _dir.WriteFile("model/model-00002-of-00002.safetensors", TempDir.RandomBytes(2 << 20, 22));
        var model = _dir.Combine("model");
        var plain = _dir.Combine("plain");
        var both = _dir.Combine("both");
        var archive = _dir.Combine("both.tar");
        var r = await Pack("--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci:{plain}:v1");
        Assert.True(r.ExitCode == 0, r.ToString());
        r = await Pack("--model", model, "--base", $"oci:{baseDir}:1", "--format", "modelcar,modelpack", "--output", $"oci:{both}:v1", "--output", $"oci-archive:{archive}:v1");
        Assert.True(r.ExitCode == 0, r.ToString());

        var plainRoot = Json(File.ReadAllBytes(Path.Combine(plain, "index.json"))).GetProperty("manifests")[0].GetProperty("digest").GetString()!;
        var root = Json(File.ReadAllBytes(Path.Combine(both, "index.json"))).GetProperty("manifests")[0];
        Assert.Equal("application/vnd.oci.image.index.v1+json", root.GetProperty("mediaType").GetString());
        var index = Json(Blob(both, root.GetProperty("digest").GetString()!)).GetProperty("manifests");
        Assert.True(plainRoot == index[0].GetProperty("digest").GetString(), // the ModelCar manifest unchanged
            System.Text.Encoding.UTF8.GetString(Blob(plain, plainRoot)) + "\n" + System.Text.Encoding.UTF8.GetString(Blob(both, index[0].GetProperty("digest").GetString()!)));
        Assert.Equal("unknown", index[1].GetProperty("platform").GetProperty("architecture").GetString());
        var modelPack = Json(Blob(both, index[1].GetProperty("digest").GetString()!));
        Assert.Equal("application/vnd.cncf.model.manifest.v1+json", modelPack.GetProperty("artifactType").GetString());
        // the same blobs plus exactly the ModelPack config, its manifest and the index
        var added = Blobs(both).Except(Blobs(plain)).ToHashSet();
        Assert.Subset(Blobs(both), Blobs(plain));
        Assert.Equal(new HashSet<string> { root.GetProperty("digest").GetString()!["sha256:".Length..], index[1].GetProperty("digest").GetString()!["sha256:".Length..],
            modelPack.GetProperty("config").GetProperty("digest").GetString()!["sha256:".Length..] }, added);
        Assert.All(modelPack.GetProperty("layers").EnumerateArray(), l => Assert.Contains(l.GetProperty("digest").GetString()!["sha256:".Length..], Blobs(plain)));

        // skopeo: the linux/amd64 instance is the ModelCar manifest; umoci unpacks its /models byte-equal
        var copy = _dir.Combine("copy");
        await Peer("skopeo", "copy", "--preserve-digests", "--override-os", "linux", "--override-arch", "amd64", $"oci:{both}:v1", $"oci:{copy}:v1");
        // the ModelCar image (its config and layers; skopeo may re-serialize the manifest itself)
        var copied = Json(Blob(copy, Json(File.ReadAllBytes(Path.Combine(copy, "index.json"))).GetProperty("manifests")[0].GetProperty("digest").GetString()!));
        var original = Json(Blob(plain, plainRoot));
        Assert.Equal("application/vnd.oci.image.config.v1+json", copied.GetProperty("config").GetProperty("mediaType").GetString());
        Assert.Equal(original.GetProperty("config").GetProperty("digest").GetString(), copied.GetProperty("config").GetProperty("digest").GetString());
        Assert.Equal(original.GetProperty("layers").EnumerateArray().Select(l => l.GetProperty("digest").GetString()), copied.GetProperty("layers").EnumerateArray().Select(l => l.GetProperty("digest").GetString()));
        var bundle = _dir.Combine("bundle");
        await Peer("umoci", "unpack", "--rootless", "--image", $"{copy}:v1", bundle);
        foreach (var f in Directory.GetFiles(model))
        {
            Assert.Equal(File.ReadAllBytes(f), File.ReadAllBytes(Path.Combine(bundle, "rootfs", "models", Path.GetFileName(f))));
        }

        await Containerd.RunAsync(_dir.Combine("containerd"), archive, "docker.io/library/modelpack:v1", "cd /models && /bin/busybox sha256sum *", output =>
        {
            var read = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split("  ", 2)).ToDictionary(p => p[1], p => p[0]);
            Assert.Equal(Directory.GetFiles(model).ToDictionary(f => Path.GetFileName(f), f => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(f))))
                .OrderBy(p => p.Key, StringComparer.Ordinal), read.OrderBy(p => p.Key, StringComparer.Ordinal));
        });
    }
}

/// <summary>Debian's containerd 1.6 with its own root, state and socket under a temp dir: ctr image import, then ctr run.</summary>
internal static class Containerd
{
    public static Task RunAsync(string dir, string archive, string name, string shellCommand, Action<string> check) =>
        WithDaemonAsync(dir, async ctr =>
        {
            var r = await ctr(["images", "import", "--index-name", name, archive]);
            Assert.True(r.ExitCode == 0, r.ToString());
            r = await ctr(["run", "--rm", name, "t1", "/bin/busybox", "sh", "-c", shellCommand]);
            Assert.True(r.ExitCode == 0, r.ToString());
            check(r.StdOut);
        });

    /// <summary>Starts containerd in <paramref name="dir"/>, gives <paramref name="use"/> a ctr bound to it, then stops it and unmounts what it left.</summary>
    public static async Task WithDaemonAsync(string dir, Func<Func<string[], Task<ToolResult>>, Task> use)
    {
        Directory.CreateDirectory(dir);
        var sock = Path.Combine(dir, "c.sock");
        var config = Path.Combine(dir, "config.toml");
        File.WriteAllText(config, $"""
            version = 2
            root = "{dir}/root"
            state = "{dir}/state"
            [grpc]
              address = "{sock}"
            [plugins."io.containerd.grpc.v1.cri"]
              disable = true
            """);
        var psi = new ProcessStartInfo(PeerTools.Which("containerd") ?? throw new FileNotFoundException("containerd is not installed (apt-get install containerd)"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        psi.ArgumentList.Add("--config");
        psi.ArgumentList.Add(config);
        using var daemon = Process.Start(psi)!;
        var log = daemon.StandardError.ReadToEndAsync();
        try
        {
            for (int i = 0; i < 100 && !File.Exists(sock); i++)
            {
                await Task.Delay(100);
            }
            Assert.True(File.Exists(sock), "containerd did not start");
            string[] ctr = ["--address", sock, "--namespace", "modelcar-test"];
            await use(args => PeerTools.RunAsync("ctr", [.. ctr, .. args]));
        }
        finally
        {
            daemon.Kill();
            await daemon.WaitForExitAsync();
            foreach (var m in File.ReadAllLines("/proc/mounts").Select(l => l.Split(' ')[1]).Where(m => m.StartsWith(dir, StringComparison.Ordinal)).Reverse())
            {
                await PeerTools.RunAsync("umount", ["-l", m]);
            }
        }
    }
}
