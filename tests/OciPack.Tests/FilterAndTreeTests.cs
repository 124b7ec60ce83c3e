using ModelCar.Packing;
using ModelCar.Common.IO;
using ModelCar.Common.Cli;
using ModelCar.Oci.Tar;
using ModelCar.TestSupport;

namespace ModelCar.OciPack.Tests;

public class FilterAndTreeTests
{
    [Theory]
    [InlineData("*.json", "config.json", true)]
    [InlineData("*.json", "sub/dir/x.json", true)] // * crosses '/'
    [InlineData("*.JSON", "config.json", false)] // case-sensitive
    [InlineData("onnx/", "onnx/model.onnx", true)] // folder
    [InlineData("onnx/", "onnx", false)]
    [InlineData("model-?.bin", "model-1.bin", true)]
    [InlineData("model-[!0-4].bin", "model-7.bin", true)]
    [InlineData("model-[!0-4].bin", "model-3.bin", false)]
    [InlineData("a+b(c).txt", "a+b(c).txt", true)]
    public void Glob_has_fnmatch_semantics(string pattern, string path, bool expected) =>
        Assert.Equal(expected, GlobFilter.FnMatch(path, pattern));

    [Fact]
    public void Include_exclude_and_default_metadata_excludes()
    {
        using var dir = new TempDir("pack-tree");
        dir.WriteFile("config.json", "{}");
        dir.WriteFile("model.safetensors", "x");
        dir.WriteFile("pytorch_model.bin", "x");
        dir.WriteFile("onnx/model.onnx", "x");
        dir.WriteFile(".cache/huggingface/download/x.lock", "x");
        dir.WriteFile(".hf-fetch/snapshot.json", "{}");
        dir.WriteFile(".gitattributes", "x");
        var all = ModelTree.Scan(dir.Path, PathFilter.Create([], []));
        Assert.Equal([".gitattributes", "config.json", "model.safetensors", "onnx/model.onnx", "pytorch_model.bin"], all.Entries.Select(e => e.RelativePath));
        var some = ModelTree.Scan(dir.Path, PathFilter.Create(["*.json", "*.safetensors", "onnx/"], ["onnx/"]));
        Assert.Equal(["config.json", "model.safetensors"], some.Entries.Select(e => e.RelativePath));
    }

    [Fact]
    public void Empty_or_missing_directory_is_refused()
    {
        using var dir = new TempDir("pack-tree");
        Directory.CreateDirectory(dir.Combine("sub"));
        dir.WriteFile(".cache/x", "only metadata");
        var e = Assert.Throws<PackingException>(() => ModelTree.Scan(dir.Path, PathFilter.Create([], [])));
        Assert.Contains("no files", e.Message);
        var m = Assert.Throws<PackingException>(() => ModelTree.Scan(dir.Combine("nope"), PathFilter.Create([], [])));
        Assert.Contains("does not exist", m.Message);
    }

    [Theory]
    [InlineData("../../etc/passwd")]
    [InlineData("/etc/passwd")]
    [InlineData("../sub/../../x")]
    public void Escaping_symlinks_are_refused(string target)
    {
        using var dir = new TempDir("pack-tree");
        dir.WriteFile("sub/a.txt", "x");
        File.CreateSymbolicLink(dir.Combine("sub", "bad"), target);
        var e = Assert.Throws<PackingException>(() => ModelTree.Scan(dir.Path, PathFilter.Create([], [])));
        Assert.Contains("bad", e.Message);
        Assert.Matches("absolute|outside", e.Message);
    }

    [Fact]
    public void Symlink_escaping_through_another_symlink_is_refused_but_inside_links_are_kept()
    {
        using var dir = new TempDir("pack-tree");
        dir.WriteFile("d/file", "x");
        File.CreateSymbolicLink(dir.Combine("here"), ".");        // inside
        File.CreateSymbolicLink(dir.Combine("d", "up"), "../d/file"); // inside
        var ok = ModelTree.Scan(dir.Path, PathFilter.Create([], []));
        Assert.Equal(2, ok.Entries.Count(e => e.Kind == ModelEntryKind.Symlink));
        File.CreateSymbolicLink(dir.Combine("sneaky"), "here/.."); // lexically "." but really the parent
        Assert.Throws<PackingException>(() => ModelTree.Scan(dir.Path, PathFilter.Create([], [])));
    }

    [Fact]
    public void Fifo_is_refused_without_opening_it()
    {
        using var dir = new TempDir("pack-tree");
        dir.WriteFile("a.txt", "x");
        var mk = PeerTools.RunAsync("mkfifo", [dir.Combine("pipe")]).GetAwaiter().GetResult();
        Assert.Equal(0, mk.ExitCode);
        var e = Assert.Throws<PackingException>(() => ModelTree.Scan(dir.Path, PathFilter.Create([], [])));
        Assert.Contains("pipe", e.Message);
        Assert.Contains("fifo", e.Message);
    }

    [Fact]
    public void Rootfs_scanner_follows_merged_usr_and_whiteouts()
    {
        var scanner = new RootFsScanner();
        scanner.AddLayer(new MemoryStream(Tar(("usr/bin/busybox", null), ("usr/bin/sh", "busybox"), ("bin", "usr/bin"))), "application/vnd.oci.image.layer.v1.tar");
        Assert.True(scanner.Exists("bin/sh"));
        Assert.True(scanner.Exists("/usr/bin/sh"));
        scanner.AddLayer(new MemoryStream(Tar(("usr/bin/.wh.busybox", null))), "application/vnd.oci.image.layer.v1.tar");
        Assert.False(scanner.Exists("bin/sh")); // dangling now
        scanner.AddLayer(new MemoryStream(Tar(("usr/bin/busybox", null), ("usr/.wh..wh..opq", null))), "application/vnd.oci.image.layer.v1.tar");
        Assert.False(scanner.Exists("usr/bin/sh")); // opaque dir hid the lower sh
        Assert.True(scanner.Exists("usr/bin/busybox"));
    }

    [Fact]
    public void Options_are_validated()
    {
        Assert.Equal((1001, 0), OciPackOptions.ParseOwner("1001:0"));
        Assert.Throws<UsageException>(() => OciPackOptions.ParseOwner("root:root"));
        Assert.Equal("/opt/models", OciPackOptions.ParseModelsPath("/opt//models/"));
        Assert.Throws<UsageException>(() => OciPackOptions.ParseModelsPath("models"));
        Assert.Throws<UsageException>(() => OciPackOptions.ParseModelsPath("/a/../b"));
        Assert.Throws<UsageException>(() => OciPackOptions.ParsePairs(["novalue"], "--label"));
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(86400), Packer.CreatedFrom("86400"));
        Assert.Throws<PackingInputException>(() => Packer.CreatedFrom("yesterday"));
    }

    private static byte[] Tar(params (string Name, string? Link)[] entries)
    {
        using var ms = new MemoryStream();
        using (var w = new System.Formats.Tar.TarWriter(ms, System.Formats.Tar.TarEntryFormat.Gnu, leaveOpen: true))
        {
            foreach (var (name, link) in entries)
            {
                var e = link is null
                    ? new System.Formats.Tar.GnuTarEntry(System.Formats.Tar.TarEntryType.RegularFile, name)
                    : new System.Formats.Tar.GnuTarEntry(System.Formats.Tar.TarEntryType.SymbolicLink, name) { LinkName = link };
                w.WriteEntry(e);
            }
        }
        return ms.ToArray();
    }

    [Fact]
    public void The_source_annotation_carries_no_password_or_query_from_the_endpoint()
    {
        // a snapshot.json written with --endpoint http://user:PASS@mirror (or by an older hf-fetch that stored it as given)
        using var dir = new TempDir("pack-meta");
        dir.WriteFile(".hf-fetch/snapshot.json",
            """{"repoId":"acme/tiny","repoType":"dataset","commit":"0123456789abcdef0123456789abcdef01234567","endpoint":"http://user:PASS-42@mirror.example:8080/hub/?sig=PASS-42"}""");
        var annotations = HfSnapshot.TryRead(dir.Path)!.Annotations().ToDictionary(a => a.Key, a => a.Value);
        Assert.Equal("http://mirror.example:8080/hub/datasets/acme/tiny", annotations["org.opencontainers.image.source"]);
    }
}

