using ModelCar.Common.IO;
using System.Net.Http;
using ModelCar.Common.Cli;
using ModelCar.HuggingFace;

namespace ModelCar.HfFetch.Tests;

public class GlobFilterTests
{
    // Expected values from CPython: fnmatch.fnmatchcase(name, pattern + ("*" if pattern.endswith("/") else ""))
    [Theory]
    [InlineData("model.safetensors", "*.safetensors", true)]
    [InlineData("sub/model.safetensors", "*.safetensors", true)] // '*' crosses '/'
    [InlineData("a/b/c.json", "*.json", true)]
    [InlineData("A.JSON", "*.json", false)] // case-sensitive
    [InlineData("sub/x.bin", "sub/", true)] // trailing '/' = folder
    [InlineData("sub2/x.bin", "sub/", false)]
    [InlineData("sub", "sub/", false)]
    [InlineData("original/consolidated.pth", "original/*", true)]
    [InlineData("x/original/a", "original/*", false)] // anchored at the start
    [InlineData("model-00001-of-00002.safetensors", "model-0000[0-9]-*", true)]
    [InlineData("model-0000a-of.safetensors", "model-0000[!0-9]-*", true)]
    [InlineData("a[b", "a[b", true)] // '[' without ']' is literal
    [InlineData("ab", "a?", true)]
    [InlineData("a/", "a?", true)] // '?' matches '/'
    [InlineData("a]", "a[]]", true)]
    [InlineData("a-", "a[a-]", true)]
    [InlineData("ab", "a[!b]", false)]
    [InlineData("README.md", "README*", true)]
    [InlineData("dir/README.md", "README*", false)]
    [InlineData("tok.json", "t?k.*", true)]
    [InlineData("x#y.bin", "x#y.bin", true)]
    [InlineData("x%y", "x%y", true)]
    [InlineData("e\u00e9.txt", "e?.txt", true)]
    [InlineData("axb", "a.b", false)] // '.' is literal
    [InlineData("dir/sub/f", "dir/*/f", true)]
    [InlineData("dir/f", "dir/*/f", false)]
    [InlineData("a\\b", "a\\b", true)] // backslash is literal in fnmatch
    [InlineData("c", "[z-a]", false)] // reversed range matches nothing
    [InlineData("-", "[a-]", true)]
    [InlineData("b", "[!a-c]", false)]
    [InlineData("d", "[!a-c]", true)]
    public void Matches_like_python_fnmatch(string name, string pattern, bool expected)
    {
        Assert.Equal(expected, new GlobFilter([pattern], null).Matches(name));
    }

    [Fact]
    public void Include_first_then_exclude()
    {
        var filter = new GlobFilter(["*.safetensors", "*.json"], ["original/", "*.bin.json"]);
        Assert.True(filter.Matches("model.safetensors"));
        Assert.True(filter.Matches("config.json"));
        Assert.False(filter.Matches("original/model.safetensors"));
        Assert.False(filter.Matches("x.bin.json"));
        Assert.False(filter.Matches("README.md"));
        var excludeOnly = new GlobFilter([], ["*.md"]);
        Assert.True(excludeOnly.Matches("a/b.bin"));
        Assert.False(excludeOnly.Matches("README.md"));
    }
}

public class PathSafetyTests
{
    [Fact]
    public void RealPath_follows_links_along_the_path_like_the_kernel()
    {
        using var tmp = new ModelCar.TestSupport.TempDir();
        var root = tmp.Combine("root");
        Directory.CreateDirectory(Path.Combine(root, "real", "deep"));
        Directory.CreateSymbolicLink(Path.Combine(root, "rel"), "real/deep");
        Directory.CreateSymbolicLink(Path.Combine(root, "up"), "../outside");
        Directory.CreateSymbolicLink(tmp.Combine("rootlink"), root);
        Assert.Equal(Path.Combine(root, "real", "deep", "x", "y"), HubPaths.RealPath(Path.Combine(root, "rel", "x", "y")));
        Assert.Equal(tmp.Combine("outside", "f"), HubPaths.RealPath(Path.Combine(root, "up", "f")));
        Assert.Equal(Path.Combine(root, "real"), HubPaths.RealPath(Path.Combine(root, "rel", "..")));
        // DIR itself may be a link; what matters is where the files end up relative to its real path
        Assert.Equal(Path.Combine(root, "real", "deep", "f"), HubPaths.LocalPath(tmp.Combine("rootlink"), "rel/f") is var p ? HubPaths.RealPath(p) : null);
        var ex = Assert.Throws<HubException>(() => HubPaths.LocalPath(tmp.Combine("rootlink"), "up/f"));
        Assert.Contains("symbolic link", ex.Message);
    }

    [Theory]
    [InlineData("../evil")]
    [InlineData("a/../../evil")]
    [InlineData("a/..")]
    [InlineData("/etc/passwd")]
    [InlineData("C:/Windows/x")]
    [InlineData("c:evil")]
    [InlineData("a\\..\\b")]
    [InlineData("a//b")]
    [InlineData("./a")]
    [InlineData("")]
    [InlineData(".hf-fetch/snapshot.json")]
    public void Refuses_unsafe_paths(string path)
    {
        Assert.NotNull(HubPaths.UnsafeReason(path));
        using var dir = new TestSupport.TempDir("hf-safe");
        Assert.Throws<HubException>(() => HubPaths.LocalPath(dir.Path, path));
    }

    [Theory]
    [InlineData("model.safetensors")]
    [InlineData("sub dir/with #hash and %25.bin")]
    [InlineData("ünï/cødé..txt")]
    [InlineData("..foo")]
    [InlineData(".gitattributes")]
    public void Accepts_safe_paths_inside_the_root(string path)
    {
        Assert.Null(HubPaths.UnsafeReason(path));
        using var dir = new TestSupport.TempDir("hf-safe");
        var local = HubPaths.LocalPath(dir.Path, path);
        Assert.StartsWith(Path.GetFullPath(dir.Path) + "/", local, StringComparison.Ordinal);
    }
}

public class HubProtocolTests
{
    [Fact]
    public void Urls_quote_revision_fully_and_path_per_segment()
    {
        var e = "https://hub.example";
        Assert.Equal("https://hub.example/api/models/org/m/revision/refs%2Fpr%2F1",
            HubPaths.Revision(e, RepoType.Model, "org/m", "refs/pr/1").AbsoluteUri);
        Assert.Equal("https://hub.example/datasets/org/d/resolve/refs%2Fpr%2F1/a%20b/c%23d%25e%C3%A9.bin",
            HubPaths.Resolve(e, RepoType.Dataset, "org/d", "refs/pr/1", "a b/c#d%eé.bin").AbsoluteUri);
        Assert.Equal("https://hub.example/api/datasets/org/d/tree/abc?recursive=true&expand=false",
            HubPaths.Tree(e, RepoType.Dataset, "org/d", "abc").AbsoluteUri);
    }

    [Theory]
    [InlineData("W/\"abc\"", "abc")]
    [InlineData("\"abc\"", "abc")]
    [InlineData("abc", "abc")]
    [InlineData(" ", null)]
    public void Etags_lose_weak_marker_and_quotes(string raw, string? expected) => Assert.Equal(expected, HubClient.NormalizeEtag(raw));

    [Fact]
    public void Link_next_is_found_among_other_relations()
    {
        using var r = new HttpResponseMessage();
        r.Headers.TryAddWithoutValidation("Link", "<https://h/api/models/a/b/tree/c?cursor=x,y>; rel=\"prev\", <https://h/api/models/a/b/tree/c?recursive=true&cursor=Z>; rel=\"next\"");
        Assert.Equal("https://h/api/models/a/b/tree/c?recursive=true&cursor=Z", HubClient.NextLink(r));
        using var none = new HttpResponseMessage();
        Assert.Null(HubClient.NextLink(none));
    }

    [Fact]
    public void Endpoint_and_offline_follow_env_rules()
    {
        var env = new Dictionary<string, string?> { ["HF_ENDPOINT"] = "https://mirror.example/", ["HF_HUB_OFFLINE"] = "yes" };
        Assert.Equal("https://mirror.example", HubPaths.ResolveEndpoint(null, k => env.GetValueOrDefault(k)));
        Assert.Equal("http://127.0.0.1:9", HubPaths.ResolveEndpoint("http://127.0.0.1:9/", k => env.GetValueOrDefault(k)));
        Assert.Equal(HubPaths.DefaultEndpoint, HubPaths.ResolveEndpoint(null, _ => null));
        Assert.Throws<HubInputException>(() => HubPaths.ResolveEndpoint("ftp://x", _ => null));
        Assert.True(HubPaths.IsOfflineEnv(k => env.GetValueOrDefault(k)));
        Assert.False(HubPaths.IsOfflineEnv(_ => "0"));
    }

    [Fact]
    public void Token_order_is_file_then_HF_TOKEN_then_legacy_then_HF_HOME()
    {
        using var dir = new TestSupport.TempDir("hf-tok");
        dir.WriteFile("home/token", "tok-from-home\n");
        dir.WriteFile("file", " tok-from-file \n");
        var env = new Dictionary<string, string?> { ["HF_HOME"] = dir.Combine("home") };
        Assert.Equal("tok-from-home", HubCredentials.ResolveToken(null, k => env.GetValueOrDefault(k)));
        env["HUGGING_FACE_HUB_TOKEN"] = "tok-legacy";
        Assert.Equal("tok-legacy", HubCredentials.ResolveToken(null, k => env.GetValueOrDefault(k)));
        env["HF_TOKEN"] = "tok-env";
        Assert.Equal("tok-env", HubCredentials.ResolveToken(null, k => env.GetValueOrDefault(k)));
        Assert.Equal("tok-from-file", HubCredentials.ResolveToken(dir.Combine("file"), k => env.GetValueOrDefault(k)));
        Assert.Null(HubCredentials.ResolveToken(null, _ => null));
        Assert.Equal("***", ModelCar.Common.Logging.Redactor.Redact("tok-env"));
    }

    [Fact]
    public void Repo_ids_are_checked()
    {
        HubPaths.ValidateRepoId("ibm-granite/granite-3.3-2b-instruct");
        HubPaths.ValidateRepoId("gpt2");
        Assert.Throws<HubInputException>(() => HubPaths.ValidateRepoId("a/b/c"));
        Assert.Throws<HubInputException>(() => HubPaths.ValidateRepoId("../x"));
        Assert.Throws<HubInputException>(() => HubPaths.ValidateRepoId("a/b?x=1"));
    }
}
