using System.Text;
using ModelCar.TestSupport;

namespace ModelCar.RegistryPush.Tests;

/// <summary>Basic (htpasswd), Bearer token (the registry's auth: token) and TLS, with the published binary.</summary>
public sealed class AuthAndTlsTests
{
    internal static Task<string> Htpasswd(string user, string password) => HtpasswdRegistryFixture.Htpasswd(user, password);

    [Fact]
    public async Task Htpasswd_basic_auth_with_creds_password_file_and_authfile_and_wrong_password_without_retry_storm()
    {
        const string password = "s3cret-Pa55word-xyz";
        await using var registry = await new RegistryContainer(new RegistryContainerOptions { Htpasswd = await Htpasswd("pusher", password) }).StartAsync();
        await using var proxy = await FaultProxy.StartAsync(registry.BaseUri);
        using var tmp = new TempDir();
        var image = TestImages.WriteLayout(tmp.Combine("layout"), "v1", TestImages.RandomLayers(31, 100_000, 2000));
        var host = proxy.HostPort;

        var noCreds = await PushTests.Push("--source", $"oci:{image.LayoutPath}", "--dest", $"docker://{host}/auth/none:v1", "--tls-verify=false");
        Assert.Equal(1, noCreds.ExitCode);
        Assert.Contains("401 Unauthorized", noCreds.StdErr);

        var withCreds = await PushTests.Push("--source", $"oci:{image.LayoutPath}", "--dest", $"docker://{host}/auth/creds:v1", "--tls-verify=false",
            "--creds", $"pusher:{password}", "--verbose");
        Assert.True(withCreds.ExitCode == 0, withCreds.ToString());
        Assert.Equal(image.ManifestDigest, await Skopeo.InspectDigestAsync($"{registry.HostPort}/auth/creds:v1", "--creds", $"pusher:{password}"));

        var passwordFile = tmp.WriteFile("password", password + "\n");
        var withFile = await PushTests.Push("--source", $"oci:{image.LayoutPath}", "--dest", $"docker://{host}/auth/file:v1", "--tls-verify=false",
            "--username", "pusher", "--password-file", passwordFile, "--verbose");
        Assert.True(withFile.ExitCode == 0, withFile.ToString());

        // auth.json: the most specific key wins over the host key (which holds a wrong password)
        var good = Convert.ToBase64String(Encoding.UTF8.GetBytes($"pusher:{password}"));
        var bad = Convert.ToBase64String(Encoding.UTF8.GetBytes("pusher:wrong"));
        var authFile = tmp.WriteFile("auth.json", "{\"auths\":{\"" + host + "\":{\"auth\":\"" + bad + "\"},\"" + host + "/auth/json\":{\"auth\":\"" + good + "\"}}}");
        var withAuthFile = await PushTests.Push("--source", $"oci:{image.LayoutPath}", "--dest", $"docker://{host}/auth/json:v1", "--tls-verify=false", "--authfile", authFile, "--verbose");
        Assert.True(withAuthFile.ExitCode == 0, withAuthFile.ToString());
        var viaEnv = await ToolRunner.RunAsync("registry-push", ["--source", $"oci:{image.LayoutPath}", "--dest", $"docker://{host}/auth/json:v2", "--tls-verify=false"],
            new Dictionary<string, string?> { ["REGISTRY_AUTH_FILE"] = authFile });
        Assert.True(viaEnv.ExitCode == 0, viaEnv.ToString());

        foreach (var run in new[] { withCreds, withFile, withAuthFile, viaEnv })
        {
            Assert.DoesNotContain(password, run.AllOutput);
            Assert.DoesNotContain(good, run.AllOutput);
        }

        int before = proxy.Requests;
        var wrong = await PushTests.Push("--source", $"oci:{image.LayoutPath}", "--dest", $"docker://{host}/auth/wrong:v1", "--tls-verify=false",
            "--creds", "pusher:not-the-password", "--jobs", "1");
        Assert.Equal(1, wrong.ExitCode);
        Assert.Contains("401 Unauthorized", wrong.StdErr);
        Assert.Contains("check the credentials: --creds, --username/--password-file or --authfile", wrong.StdErr);
        Assert.DoesNotContain("retry", wrong.StdErr);
        int sent = proxy.Requests - before;
        Assert.True(sent <= 4, $"{sent} requests for a wrong password:\n{string.Join("\n", proxy.Log)}");
        Assert.DoesNotContain("not-the-password", wrong.AllOutput);
    }

    [Fact]
    public async Task Registry_token_auth_bearer_flow()
    {
        await using var issuer = await TokenIssuer.StartAsync("robot", "t0ken-pass-123");
        await using var registry = await new RegistryContainer(new RegistryContainerOptions
        {
            TokenAuth = (issuer.Realm, TokenIssuer.Service, TokenIssuer.Issuer, issuer.RootCertPem),
        }).StartAsync();
        using var tmp = new TempDir();
        var image = TestImages.WriteLayout(tmp.Combine("layout"), "v1", TestImages.RandomLayers(32, 150_000, 3000));
        var host = registry.HostPort;

        var r = await PushTests.Push("--source", $"oci:{image.LayoutPath}", "--dest", $"docker://{host}/tok/a:v1", "--dest", $"docker://{host}/tok/b:v1",
            "--tls-verify=false", "--creds", "robot:t0ken-pass-123", "--verbose");
        Assert.True(r.ExitCode == 0, r.ToString() + "\n" + await registry.LogsAsync());
        Assert.Equal($"{host}/tok/a@{image.ManifestDigest}\n{host}/tok/b@{image.ManifestDigest}", r.StdOut.Trim());
        // tokens are cached per scope: a handful of token requests, not one per request
        Assert.InRange(issuer.Requests, 2, 8);
        Assert.Contains("repository:tok/a:pull,push", issuer.Scopes.Items);
        Assert.Contains("repository:tok/b:pull,push", issuer.Scopes.Items);
        var mounted = System.Text.RegularExpressions.Regex.Matches(r.StdErr, @"(\d+) mounted, (\d+) uploaded");
        Assert.Equal(3, mounted.Sum(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture))); // mounts work with tokens
        Assert.Contains(issuer.Scopes.Items, s => s is "repository:tok/a:pull" or "repository:tok/b:pull"); // the mount's source scope
        Assert.DoesNotContain("t0ken-pass-123", r.AllOutput);
        Assert.DoesNotContain("eyJ", r.AllOutput); // no JWT in the logs

        int before = issuer.Requests;
        var wrong = await PushTests.Push("--source", $"oci:{image.LayoutPath}", "--dest", $"docker://{host}/tok/c:v1", "--tls-verify=false", "--creds", "robot:nope");
        Assert.Equal(1, wrong.ExitCode);
        Assert.Contains("/token", wrong.StdErr);
        Assert.Contains("401 Unauthorized: UNAUTHORIZED", wrong.StdErr);
        Assert.Contains("wrong user name or password?", wrong.StdErr);
        Assert.InRange(issuer.Requests - before, 1, 4);
    }

    [Fact]
    public async Task Tls_with_a_private_ca_fails_without_ca_file_and_works_with_it()
    {
        using var ca = TestCerts.CreateCa("modelcar-test-ca");
        var server = TestCerts.CreateServerCert(ca);
        await using var registry = await new RegistryContainer(new RegistryContainerOptions { Tls = server }).StartAsync();
        using var tmp = new TempDir();
        var caFile = tmp.WriteFile("ca.pem", ca.ExportCertificatePem());
        var image = TestImages.WriteLayout(tmp.Combine("layout"), "v1", TestImages.RandomLayers(33, 50_000));
        var dest = $"docker://{registry.HostPort}/tls/img:v1";

        var untrusted = await PushTests.Push("--source", $"oci:{image.LayoutPath}", "--dest", dest);
        Assert.Equal(1, untrusted.ExitCode);
        Assert.Contains("TLS", untrusted.StdErr);
        Assert.Contains("(TLS verification failed); add the registry's CA with --ca-file, or use --tls-verify=false", untrusted.StdErr);

        var trusted = await PushTests.Push("--source", $"oci:{image.LayoutPath}", "--dest", dest, "--ca-file", caFile);
        Assert.True(trusted.ExitCode == 0, trusted.ToString());
        Assert.Equal(image.ManifestDigest, await Skopeo.InspectDigestAsync($"{registry.HostPort}/tls/img:v1"));
    }
}
