using System.Net;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using ModelCar.Common.Cli;
using ModelCar.Common.Http;
using ModelCar.Oci;
using ModelCar.Registry;
using ModelCar.Registry.Auth;
using ModelCar.TestSupport;

namespace ModelCar.RegistryPush.Tests;

/// <summary>
/// Per-registry credentials (issue 11): repeatable --authfile (auth.json or legacy .dockercfg, by
/// content), --login HOST=USER:PASSWORD_FILE, explicit files that are missing, --max-blob-size.
/// In-process: the real parser and command, and fakes at the HttpMessageHandler level.
/// </summary>
public sealed class CredentialOptionsTests
{
    private static readonly HttpSettings Settings = new() { TlsVerify = true, MaxRetries = 1, RetryBaseDelay = TimeSpan.FromMilliseconds(1) };

    private static string B64(string s) => Convert.ToBase64String(Encoding.UTF8.GetBytes(s));

    private static async Task<(int Code, string StdOut, string StdErr)> RunInProcess(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = await ToolApp.RunAsync(RegistryPushCommand.Name, RegistryPushCommand.Create(), args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void Legacy_dockercfg_and_auth_json_are_told_apart_by_content()
    {
        var legacy = AuthFileLookup.Parse(Encoding.UTF8.GetBytes($$$"""{"image-registry.openshift-image-registry.svc:5000":{"auth":"{{{B64("sa:tok")}}}","email":"serviceaccount@example.org"}}"""));
        Assert.Equal(["image-registry.openshift-image-registry.svc:5000"], legacy.Auths!.Keys);
        Assert.Equal(B64("sa:tok"), legacy.Auths["image-registry.openshift-image-registry.svc:5000"].Auth);

        var modern = AuthFileLookup.Parse(Encoding.UTF8.GetBytes($$$"""{"auths":{"quay.io":{"auth":"{{{B64("robot:x")}}}"}},"HttpHeaders":{"User-Agent":"x"}}"""));
        Assert.Equal(["quay.io"], modern.Auths!.Keys);

        // a docker config.json without auths (only other settings) is not mistaken for a legacy file
        var settingsOnly = AuthFileLookup.Parse(Encoding.UTF8.GetBytes("""{"HttpHeaders":{"User-Agent":"x"},"psFormat":"table"}"""));
        Assert.Null(settingsOnly.Auths);
        Assert.Throws<System.Text.Json.JsonException>(() => AuthFileLookup.Parse(Encoding.UTF8.GetBytes("[1]")));
    }

    [Fact]
    public void Repeated_auth_files_merge_in_order_first_file_with_the_host_wins_whatever_its_format()
    {
        using var tmp = new TempDir();
        var dockercfg = tmp.WriteFile("sa/.dockercfg", $$$"""{"internal.svc:5000":{"auth":"{{{B64("sa:from-dockercfg")}}}","email":"x@y"},"quay.io":{"auth":"{{{B64("sa:not-this")}}}"}}""");
        var quay = tmp.WriteFile("quay/.dockerconfigjson", $$$$"""{"auths":{"quay.io":{"auth":"{{{{B64("robot:from-quay")}}}}"},"internal.svc:5000":{"auth":"{{{{B64("no:no")}}}}"}}}""");

        var lookup = new AuthFileLookup(AuthFileLookup.CandidateFiles([dockercfg, quay], _ => null), NullLogger.Instance).Validate();
        Assert.Equal("from-dockercfg", lookup.Get("internal.svc:5000", "ns/model")!.Password);
        Assert.Equal("not-this", lookup.Get("quay.io", "org/model")!.Password); // first file that has the host wins

        var reversed = new AuthFileLookup(AuthFileLookup.CandidateFiles([quay, dockercfg], _ => null), NullLogger.Instance).Validate();
        Assert.Equal("from-quay", reversed.Get("quay.io", "org/model")!.Password);
        Assert.Equal("no", reversed.Get("internal.svc:5000", "ns/model")!.Password);
    }

    [Fact]
    public void A_named_auth_file_that_is_missing_or_unreadable_fails_validation_naming_it()
    {
        using var tmp = new TempDir();
        var missing = tmp.Combine("secret", ".dockercfg");
        var e = Assert.Throws<RegistryException>(() => new AuthFileLookup(AuthFileLookup.CandidateFiles([missing], _ => null), NullLogger.Instance).Validate());
        Assert.Equal($"auth file '{missing}' does not exist", e.Message);

        var garbage = tmp.WriteFile("bad.json", "not json");
        e = Assert.Throws<RegistryException>(() => new AuthFileLookup(AuthFileLookup.CandidateFiles([garbage], _ => null), NullLogger.Instance).Validate());
        Assert.StartsWith($"auth file '{garbage}' is not valid JSON", e.Message);

        // an implicit location that is missing is fine (optional)
        var implicitOnly = new AuthFileLookup(AuthFileLookup.CandidateFiles(null, k => k == "HOME" ? tmp.Combine("nohome") : null), NullLogger.Instance).Validate();
        Assert.Null(implicitOnly.Get("quay.io", "a/b"));
    }

    [Theory]
    [InlineData("quay.io=robot+ci:/s/token", "quay.io", "robot+ci", "/s/token")]
    [InlineData("image-registry.openshift-image-registry.svc:5000=serviceaccount:/var/run/secrets/kubernetes.io/serviceaccount/token",
        "image-registry.openshift-image-registry.svc:5000", "serviceaccount", "/var/run/secrets/kubernetes.io/serviceaccount/token")]
    [InlineData("h:1=u:a=b:c", "h:1", "u", "a=b:c")] // first '=' and first ':' after it
    [InlineData("https://Reg.example/=u:f", "Reg.example", "u", "f")]
    public void Login_splits_at_the_first_equals_then_the_first_colon(string text, string host, string user, string file)
    {
        Assert.Equal(new LoginSpec(host, user, file), LoginSpec.Parse(text));
    }

    [Theory]
    [InlineData("quay.io")]
    [InlineData("=u:f")]
    [InlineData("quay.io=u")]
    [InlineData("quay.io=:f")]
    [InlineData("quay.io=u:")]
    [InlineData("quay.io/org=u:f")]
    public void Bad_login_values_are_usage_errors(string text)
    {
        Assert.Throws<FormatException>(() => LoginSpec.Parse(text));
    }

    [Fact]
    public async Task Cli_explicit_credential_files_missing_fail_with_one_line_and_exit_1_before_any_request()
    {
        using var tmp = new TempDir();
        var missing = tmp.Combine("nope", "auth.json");
        var r = await RunInProcess("--source", "oci:/does/not/matter", "--dest", "docker://127.0.0.1:9/a/b:v1", "--authfile", missing);
        Assert.Equal(1, r.Code);
        Assert.Equal($"registry-push: error: auth file '{missing}' does not exist", r.StdErr.Trim());

        var good = tmp.WriteFile("auth.json", """{"auths":{}}""");
        r = await RunInProcess("--source", "oci:/x", "--dest", "docker://127.0.0.1:9/a/b:v1", "--authfile", good, "--authfile", missing);
        Assert.Equal(1, r.Code);
        Assert.Contains($"auth file '{missing}' does not exist", r.StdErr);

        r = await RunInProcess("--source", "oci:/x", "--dest", "docker://127.0.0.1:9/a/b:v1", "--login", $"127.0.0.1:9=sa:{missing}");
        Assert.Equal(1, r.Code);
        Assert.Equal($"registry-push: error: --login 127.0.0.1:9 password file '{missing}' does not exist", r.StdErr.Trim());

        r = await RunInProcess("--source", "oci:/x", "--dest", "docker://127.0.0.1:9/a/b:v1", "--username", "u", "--password-file", missing);
        Assert.Equal(1, r.Code);
        Assert.Equal($"registry-push: error: password file '{missing}' does not exist", r.StdErr.Trim());
    }

    [Fact]
    public async Task Cli_usage_errors_for_login_and_for_authfile_with_global_creds_exit_2()
    {
        using var tmp = new TempDir();
        var token = tmp.WriteFile("token", "t");
        var auth = tmp.WriteFile("auth.json", """{"auths":{}}""");
        var bad = await RunInProcess("--source", "oci:/x", "--dest", "docker://h/a/b", "--login", "h-no-user");
        Assert.Equal(2, bad.Code);
        Assert.Contains("--login 'h-no-user' is not HOST=USER:PASSWORD_FILE", bad.StdErr);

        var twice = await RunInProcess("--source", "oci:/x", "--dest", "docker://h/a/b", "--login", $"h=u:{token}", "--login", $"H=v:{token}");
        Assert.Equal(2, twice.Code);
        Assert.Contains("--login names h twice", twice.StdErr, StringComparison.OrdinalIgnoreCase);

        var mixed = await RunInProcess("--source", "oci:/x", "--dest", "docker://h/a/b", "--authfile", auth, "--username", "u", "--password-file", token);
        Assert.Equal(2, mixed.Code);
        Assert.Contains("--authfile cannot be combined with --creds or --username/--password-file", mixed.StdErr);

        var size = await RunInProcess("--source", "oci:/x", "--dest", "docker://h/a/b", "--max-blob-size", "big");
        Assert.Equal(2, size.Code);
        Assert.Contains("'big' is not a size", size.StdErr);
    }

    [Fact]
    public async Task A_login_for_a_host_no_dest_names_is_a_warning()
    {
        using var tmp = new TempDir();
        var token = tmp.WriteFile("token", "t");
        // the published binary: logs go to the process's stderr
        var r = await PushTests.Push("--source", $"oci:{tmp.Combine("no-layout")}", "--dest", "docker://reg.example:5000/a/b:v1", "--login", $"reg.example=u:{token}");
        Assert.Equal(1, r.ExitCode); // the missing layout
        Assert.Contains("--login reg.example matches no --dest (hosts: reg.example:5000): those credentials are not used", r.StdErr);
    }

    /// <summary>
    /// Two registries in one process, each with its own credentials: one from a legacy .dockercfg
    /// given to --authfile, one from --login with a token file that rotates (re-read after a 401).
    /// </summary>
    [Fact]
    public async Task Each_host_gets_its_own_credentials_and_a_login_token_file_is_re_read_after_a_401()
    {
        using var tmp = new TempDir();
        var tokenFile = tmp.WriteFile("token", "token-1\n");
        var dockercfg = tmp.WriteFile(".dockercfg", $$$"""{"quay.example":{"auth":"{{{B64("robot:quay-pass")}}}","email":"r@x"},"internal.svc:5000":{"auth":"{{{B64("wrong:wrong")}}}"}}""");
        var accepted = new Dictionary<string, string> { ["quay.example"] = B64("robot:quay-pass"), ["internal.svc:5000"] = B64("serviceaccount:token-1") };
        var seen = new List<(string Host, string? Auth)>();
        var handler = new FakeHttpHandler((req, _) =>
        {
            var host = req.RequestUri!.IsDefaultPort ? req.RequestUri.Host : $"{req.RequestUri.Host}:{req.RequestUri.Port}";
            var auth = req.Headers.Authorization?.Parameter;
            lock (seen)
            {
                seen.Add((host, auth));
            }
            if (auth != accepted[host])
            {
                var r = FakeHttpHandler.Status(HttpStatusCode.Unauthorized, """{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}""");
                r.Headers.TryAddWithoutValidation("WWW-Authenticate", "Basic realm=\"test\"");
                return Task.FromResult(r);
            }
            return Task.FromResult(FakeHttpHandler.Status(req.RequestUri.AbsolutePath == "/v2/" ? HttpStatusCode.OK : HttpStatusCode.NotFound));
        });
        using var http = HttpClientFactory.Create(Settings, handler);
        var credentials = new PerHostCredentialProvider(
            new Dictionary<string, ICredentialProvider> { ["internal.svc:5000"] = new ExplicitCredentialProvider("serviceaccount", null, tokenFile) },
            new AuthFileLookup(AuthFileLookup.CandidateFiles([dockercfg], _ => null), NullLogger.Instance).Validate());
        var digest = Digest.Sha256(Encoding.UTF8.GetBytes("blob"));

        var quay = new RegistryRepository(new RegistryClient("quay.example", http, Settings, credentials, NullLogger.Instance) { AuthRepository = "org/model" }, "org/model");
        var internalRepo = new RegistryRepository(new RegistryClient("internal.svc:5000", http, Settings, credentials, NullLogger.Instance) { AuthRepository = "ns/model" }, "ns/model");
        await quay.Client.PingAsync(CancellationToken.None);
        await internalRepo.Client.PingAsync(CancellationToken.None);
        Assert.False(await quay.BlobExistsAsync(digest, CancellationToken.None));
        Assert.False(await internalRepo.BlobExistsAsync(digest, CancellationToken.None));

        // the SA token rotates: the registry now wants token-2; the file is re-read after the 401
        File.WriteAllText(tokenFile, "token-2\n");
        accepted["internal.svc:5000"] = B64("serviceaccount:token-2");
        Assert.False(await internalRepo.BlobExistsAsync(digest, CancellationToken.None));

        lock (seen)
        {
            Assert.DoesNotContain(seen, s => s.Host == "quay.example" && s.Auth is not null && s.Auth != B64("robot:quay-pass"));
            Assert.DoesNotContain(seen, s => s.Host == "internal.svc:5000" && s.Auth == B64("wrong:wrong")); // --login beats the auth file
            Assert.Contains(seen, s => s.Host == "internal.svc:5000" && s.Auth == B64("serviceaccount:token-2"));
        }
    }

    [Fact]
    public void Max_blob_size_names_the_layer_title_else_the_digest_and_the_limit()
    {
        var small = new Descriptor { MediaType = MediaTypes.Layer, Digest = Digest.Sha256([1]), Size = 100 };
        var titled = new Descriptor
        {
            MediaType = MediaTypes.Layer,
            Digest = Digest.Sha256([2]),
            Size = 47L << 30,
            Annotations = new Dictionary<string, string> { [Annotations.Title] = "/models/consolidated.safetensors" },
        };
        var untitled = titled with { Annotations = null, Digest = Digest.Sha256([3]) };

        RegistryPushCommand.CheckBlobSizes([small], 100); // equal to the limit is fine
        var e = Assert.Throws<ToolException>(() => RegistryPushCommand.CheckBlobSizes([small, titled], 20L << 30));
        Assert.StartsWith("layer /models/consolidated.safetensors (" + titled.Digest + ") is 47", e.Message);
        Assert.Contains("over --max-blob-size 20", e.Message);
        Assert.Contains("21474836480 bytes", e.Message);
        e = Assert.Throws<ToolException>(() => RegistryPushCommand.CheckBlobSizes([untitled], 20L << 30));
        Assert.StartsWith("blob " + untitled.Digest + " is 47", e.Message);
    }
}
