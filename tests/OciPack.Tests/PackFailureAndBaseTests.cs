using ModelCar.Packing;
using System.Text.Json;
using ModelCar.TestSupport;

namespace ModelCar.OciPack.Tests;

/// <summary>Bad input and other base kinds, run through the published binary.</summary>
public sealed class PackFailureAndBaseTests : IDisposable
{
    private readonly TempDir _dir = new("oci-pack-err");

    public void Dispose() => _dir.Dispose();

    private string BaseLayout(bool withShell = true, string? entrypoint = null)
    {
        var path = _dir.Combine($"base-{Guid.NewGuid():N}"[..13]);
        Directory.CreateDirectory(path);
        TestBases.WriteLayout(path, "1", TestBases.BusyboxLayer(withShell), gzip: false, entrypoint);
        return path;
    }

    private string Model(string name = "model")
    {
        _dir.WriteFile($"{name}/config.json", "{}");
        _dir.WriteFile($"{name}/weights.bin", TempDir.RandomBytes(2 << 20, 7));
        return _dir.Combine(name);
    }

    private static void AssertFailed(ToolResult r, string expected, int code = 1)
    {
        Assert.True(r.ExitCode == code, $"expected exit {code}\n{r}");
        var errorLines = r.StdErr.Split('\n').Where(l => l.StartsWith("oci-pack: error:", StringComparison.Ordinal)).ToList();
        Assert.Single(errorLines);
        Assert.Contains(expected, errorLines[0]);
        Assert.Equal(string.Empty, r.StdOut.Trim());
    }

    [Fact]
    public async Task Missing_empty_and_escaping_model_dirs_fail_before_writing()
    {
        var baseDir = BaseLayout();
        var output = _dir.Combine("out");
        AssertFailed(await ToolRunner.RunAsync("oci-pack", "--model", _dir.Combine("nope"), "--base", $"oci:{baseDir}", "--output", $"oci:{output}"), "does not exist");
        Directory.CreateDirectory(_dir.Combine("empty", "sub"));
        AssertFailed(await ToolRunner.RunAsync("oci-pack", "--model", _dir.Combine("empty"), "--base", $"oci:{baseDir}", "--output", $"oci-archive:{output}.tar"), "no files");
        var model = Model();
        File.CreateSymbolicLink(Path.Combine(model, "passwd"), "../../../../etc/passwd");
        AssertFailed(await ToolRunner.RunAsync("oci-pack", "--model", model, "--base", $"oci:{baseDir}", "--output", $"oci:{output}"), "points outside the model directory");
        Assert.False(Directory.Exists(output));
        Assert.False(File.Exists(output + ".tar"));
        AssertFailed(await ToolRunner.RunAsync("oci-pack", "--model", model, "--output", $"oci:{output}"), "--base", code: 2);
    }

    [Fact]
    public async Task Unreadable_file_fails_clearly()
    {
        // Tests run as root, which reads a 0000 file anyway: run the tool as nobody (setpriv) instead.
        var model = Model();
        File.SetUnixFileMode(Path.Combine(model, "weights.bin"), UnixFileMode.None);
        var outParent = _dir.Combine("writable");
        Directory.CreateDirectory(outParent);
        File.SetUnixFileMode(outParent, (UnixFileMode)0b111_111_111);
        File.SetUnixFileMode(_dir.Path, (UnixFileMode)0b111_101_101);
        var r = await PeerTools.RunAsync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", ToolRunner.PathOf("oci-pack"),
            "--model", model, "--base", $"oci:{BaseLayout()}:1", "--output", $"oci-archive:{outParent}/m.tar"]);
        AssertFailed(r, "cannot read model file");
        Assert.Contains("weights.bin", r.StdErr);
        Assert.Empty(Directory.GetFileSystemEntries(outParent));
    }

    [Fact]
    public async Task Base_without_shell_or_with_an_entrypoint_is_refused()
    {
        var model = Model();
        var output = _dir.Combine("out");
        AssertFailed(await ToolRunner.RunAsync("oci-pack", "--model", model, "--base", $"oci:{BaseLayout(withShell: false)}:1", "--output", $"oci:{output}"), "has no /bin/sh");
        AssertFailed(await ToolRunner.RunAsync("oci-pack", "--model", model, "--base", "scratch", "--output", $"oci:{output}"), "has no /bin/sh");
        Assert.False(Directory.Exists(output));
        var scratch = await ToolRunner.RunAsync("oci-pack", "--model", model, "--base", "scratch", "--allow-no-shell", "--output", $"oci:{output}:s");
        Assert.True(scratch.ExitCode == 0, scratch.ToString());
        Assert.Contains("warn", scratch.StdErr);

        var withEntrypoint = BaseLayout(entrypoint: """["/bin/busybox","httpd","-f"]""");
        AssertFailed(await ToolRunner.RunAsync("oci-pack", "--model", model, "--base", $"oci:{withEntrypoint}:1", "--output", $"oci:{output}:e"), "ENTRYPOINT");
        var cleared = await ToolRunner.RunAsync("oci-pack", "--model", model, "--base", $"oci:{withEntrypoint}:1", "--clear-entrypoint", "--output", $"oci:{output}:e");
        Assert.True(cleared.ExitCode == 0, cleared.ToString());
        var inspect = JsonDocument.Parse((await PeerTools.RunAsync("skopeo", ["inspect", "--config", $"oci:{output}:e"])).StdOut).RootElement;
        Assert.False(inspect.GetProperty("config").TryGetProperty("Entrypoint", out _));
    }

    [Fact]
    public async Task Layout_is_readable_by_any_uid_whatever_the_umask()
    {
        var model = Model();
        var output = _dir.Combine("umask-out");
        var r = await PeerTools.RunAsync("sh", ["-c", "umask 077; exec \"$0\" \"$@\"", ToolRunner.PathOf("oci-pack"),
            "--model", model, "--base", $"oci:{BaseLayout()}:1", "--output", $"oci:{output}:v1"]);
        Assert.True(r.ExitCode == 0, r.ToString());
        foreach (var dir in new[] { output, Path.Combine(output, "blobs"), Path.Combine(output, "blobs", "sha256") })
        {
            Assert.Equal((UnixFileMode)0b111_101_101, File.GetUnixFileMode(dir));
        }
        var files = Directory.GetFiles(output, "*", SearchOption.AllDirectories);
        Assert.True(files.Length >= 6, string.Join(", ", files));
        Assert.All(files, f => Assert.Equal((UnixFileMode)0b110_100_100, File.GetUnixFileMode(f)));
    }

    [Fact]
    public async Task Full_disk_leaves_no_complete_looking_output()
    {
        var model = Model();
        var baseDir = BaseLayout();
        var mnt = _dir.Combine("tiny");
        Directory.CreateDirectory(mnt);
        var mount = await PeerTools.RunAsync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt]);
        Assert.True(mount.ExitCode == 0, "tmpfs mount (tests run as root): " + mount);
        try
        {
            var archive = await ToolRunner.RunAsync("oci-pack", "--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci-archive:{mnt}/m.tar");
            AssertFailed(archive, "space");
            Assert.Empty(Directory.GetFileSystemEntries(mnt));

            var layout = await ToolRunner.RunAsync("oci-pack", "--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci:{mnt}/layout:v1");
            AssertFailed(layout, "space");
            Assert.False(File.Exists(Path.Combine(mnt, "layout", "index.json")));
            Assert.Empty(Directory.GetFiles(Path.Combine(mnt, "layout", "blobs", "sha256"), ".tmp-*"));
        }
        finally
        {
            await PeerTools.RunAsync("umount", [mnt]);
        }
    }

    [Fact]
    public async Task Archive_and_multi_arch_bases()
    {
        var model = Model();
        var baseDir = BaseLayout();
        var viaLayout = await ToolRunner.RunAsync("oci-pack", "--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci:{_dir.Combine("o1")}");
        Assert.True(viaLayout.ExitCode == 0, viaLayout.ToString());

        var baseTar = _dir.Combine("base.tar");
        var tar = await PeerTools.RunAsync("tar", ["-C", baseDir, "-cf", baseTar, "oci-layout", "index.json", "blobs"]);
        Assert.Equal(0, tar.ExitCode);
        var viaArchive = await ToolRunner.RunAsync("oci-pack", "--model", model, "--base", $"oci-archive:{baseTar}:1", "--output", $"oci:{_dir.Combine("o2")}");
        Assert.True(viaArchive.ExitCode == 0, viaArchive.ToString());
        Assert.Equal(viaLayout.StdOut, viaArchive.StdOut); // same base bytes → same image

        var multi = _dir.Combine("multi");
        Directory.CreateDirectory(multi);
        TestBases.WriteMultiArchLayout(multi, "1", ("amd64", TestBases.BusyboxLayer()), ("arm64", TestBases.BusyboxLayer()));
        var arm = await ToolRunner.RunAsync("oci-pack", "--model", model, "--base", $"oci:{multi}:1", "--platform", "linux/arm64", "--output", $"oci:{_dir.Combine("o3")}:arm");
        Assert.True(arm.ExitCode == 0, arm.ToString());
        var inspect = JsonDocument.Parse((await PeerTools.RunAsync("skopeo", ["inspect", $"oci:{_dir.Combine("o3")}:arm"])).StdOut).RootElement;
        Assert.Equal("arm64", inspect.GetProperty("Architecture").GetString());
        AssertFailed(await ToolRunner.RunAsync("oci-pack", "--model", model, "--base", $"oci:{multi}:1", "--platform", "linux/s390x", "--output", $"oci:{_dir.Combine("o4")}"), "no manifest for platform linux/s390x");
    }
}
