using System.Text.Json;
using ModelCar.TestSupport;

namespace ModelCar.Pipeline.Tests;

/// <summary>
/// The two-platform ModelCar (oci-pack --platform linux/amd64,linux/arm64 on the two-platform
/// busybox base) starts on either node kind the way KServe starts it: podman takes the platform's
/// manifest from the index (--arch), runs it as a random UID with GID 0 with only KServe's args
/// (sh -c "ln -sf /proc/$$/root/models /mnt/models &amp;&amp; sleep infinity"), and a second container in
/// its PID namespace (shareProcessNamespace) reads every model file through /mnt/models. The arm64
/// one runs under qemu-user-static (binfmt_misc, set up here; the test fails if it cannot be).
/// </summary>
public sealed class Arm64ModelCarTests : IDisposable
{
    private readonly TempDir _dir = new("mc-arm64");

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("arm64", "aarch64")]
    [InlineData("amd64", "x86_64")]
    public async Task The_platforms_modelcar_starts_with_kserves_args_as_a_random_uid_and_serves_mnt_models(string arch, string machine)
    {
        await QemuUser.EnsureArm64Async();
        var baseDir = _dir.Combine("base");
        TestBases.WriteTwoPlatformBusybox(baseDir, "1");
        var model = _dir.Combine("model");
        _dir.WriteFile("model/config.json", """{"model_type":"tiny"}""");
        _dir.WriteFile("model/model.safetensors", TempDir.RandomBytes((2 << 20) + 5, 21));
        _dir.WriteFile("model/tokenizer/tokenizer.json", """{"v":2}""");
        var image = _dir.Combine("image");
        var pack = await ToolRunner.RunAsync("oci-pack", "--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci:{image}:v1",
            "--layer-threshold", "1M", "--platform", "linux/amd64,linux/arm64");
        Assert.True(pack.ExitCode == 0, pack.ToString());

        // what the node's runtime pulls: the platform's manifest of the index (image ID = its config digest)
        var pull = await Podman.RunAsync("pull", "-q", "--arch", arch, $"oci:{image}:v1");
        Assert.True(pull.ExitCode == 0, pull.ToString());
        var imageId = pull.StdOut.Trim().Split('\n')[^1];
        Assert.Equal(ConfigDigestOf(image, pack.StdOut.Trim(), arch)["sha256:".Length..], imageId);

        var uid = BuilderImage.RandomUid();
        var mnt = _dir.Combine("mnt");
        Directory.CreateDirectory(mnt);
        File.SetUnixFileMode(mnt, (UnixFileMode)Convert.ToInt32("777", 8)); // an emptyDir
        var name = $"modelcar-{arch}-{Guid.NewGuid():N}";
        var modelcar = await Podman.RunAsync("run", "-d", "--name", name, "--network", "none", "--user", $"{uid}:0", "-v", $"{mnt}:/mnt", imageId,
            "sh", "-c", "ln -sf /proc/$$/root/models /mnt/models && sleep infinity");
        try
        {
            Assert.True(modelcar.ExitCode == 0, modelcar.ToString());
            // the serving side: same PID namespace, UID and /mnt; it lists the machine it runs on and hashes every file
            var read = await Podman.RunAsync("run", "--rm", "--network", "none", "--pid", $"container:{name}", "--user", $"{uid}:0", "-v", $"{mnt}:/mnt", imageId,
                "sh", "-c", "for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do [ -e /mnt/models/config.json ] && break; sleep 0.2; done; "
                + "uname -m; cd /mnt/models/ && find . -type f | sort | while read -r f; do sha256sum \"$f\"; done");
            Assert.True(read.ExitCode == 0, read.ToString());
            var lines = read.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(machine, lines[0]);
            // the model's files, not oci-pack's own layer record beside them (MODEL/.oci-pack/, never packed)
            var expected = Directory.EnumerateFiles(model, "*", SearchOption.AllDirectories)
                .Where(f => !Path.GetRelativePath(model, f).StartsWith(".oci-pack/", StringComparison.Ordinal))
                .Select(f => $"{Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(f)))}  ./{Path.GetRelativePath(model, f)}")
                .Order(StringComparer.Ordinal);
            Assert.Equal(expected, lines[1..].Order(StringComparer.Ordinal));

            // the ModelCar is still up (sleep infinity), running the platform's own busybox
            var state = await Podman.RunAsync("inspect", "--format", "{{.State.Running}}", name);
            Assert.Equal("true", state.StdOut.Trim());
            var exec = await Podman.RunAsync("exec", name, "sh", "-c", "uname -m");
            Assert.True(exec.ExitCode == 0, exec.ToString());
            Assert.Equal(machine, exec.StdOut.Trim());
        }
        finally
        {
            await Podman.RunAsync("rm", "-f", "-t", "0", name);
            await Podman.RunAsync("rmi", "-f", imageId);
        }
    }

    private static string ConfigDigestOf(string layout, string indexDigest, string arch)
    {
        byte[] Blob(string d) => File.ReadAllBytes(Path.Combine(layout, "blobs", "sha256", d["sha256:".Length..]));
        using var index = JsonDocument.Parse(Blob(indexDigest));
        var entry = index.RootElement.GetProperty("manifests").EnumerateArray().Single(m => m.GetProperty("platform").GetProperty("architecture").GetString() == arch);
        using var manifest = JsonDocument.Parse(Blob(entry.GetProperty("digest").GetString()!));
        return manifest.RootElement.GetProperty("config").GetProperty("digest").GetString()!;
    }
}
