using ModelCar.TestSupport;

namespace ModelCar.MrRegister.Tests;

/// <summary>Bearer auth (token file precedence, plain-text 401/403, never printing the token), TLS with a private CA, and `lookup`.</summary>
public sealed class AuthTlsLookupTests
{
    private const string Token = "sa-token-eyJhbGciOiJSUzI1NiIsImtpZCI6Ik1yUmVn.c2VjcmV0";

    [Fact]
    public async Task Token_file_is_sent_as_bearer_and_never_printed()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        fake.Token = Token;
        using var dir = new TempDir("mr-token");
        var tokenFile = dir.WriteFile("token", Token + "\n");

        var verbose = await Tool.RegisterAsync(fake, [.. Tool.Granite, "--token-file", tokenFile, "--verbose"]);
        var dry = await Tool.RegisterAsync(fake, [.. Tool.Granite[..4], "--uri", "oci://q/other:1", "--update", "--token-file", tokenFile, "--verbose", "--dry-run"]);
        var json = await Tool.RegisterAsync(fake, [.. Tool.Granite, "--token-file", tokenFile, "--verbose", "--log-format", "json"]);
        var lookup = await Tool.RunAsync(fake, "lookup", "--model-name", Tool.Granite[1], "--version-name", Tool.Granite[3], "--token-file", tokenFile, "--verbose");
        fake.Token = "rotated";
        var rejected = await Tool.RegisterAsync(fake, [.. Tool.Granite, "--token-file", tokenFile, "--verbose"]);

        Assert.True(verbose.ExitCode == 0, verbose.ToString());
        Assert.True(dry.ExitCode == 0, dry.ToString());
        Assert.True(json.ExitCode == 0, json.ToString());
        Assert.True(lookup.ExitCode == 0, lookup.ToString());
        Assert.Equal(1, rejected.ExitCode);
        Assert.Contains("PATCH", dry.StdOut);
        Assert.All(fake.Log.Where(l => l.Status != 401), l => Assert.Equal("Bearer " + Token, l.Authorization));
        foreach (var r in new[] { verbose, dry, json, lookup, rejected })
        {
            Assert.DoesNotContain(Token, r.AllOutput);
            Assert.DoesNotContain("c2VjcmV0", r.AllOutput);
        }
    }

    [Fact]
    public async Task Unauthorized_plain_text_names_the_token_file_not_its_content()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        fake.Token = "the-right-one";
        using var dir = new TempDir("mr-token");
        var tokenFile = dir.WriteFile("sa-token", Token);

        var r = await Tool.RegisterAsync(fake, [.. Tool.Granite, "--token-file", tokenFile]);

        Assert.Equal(1, r.ExitCode);
        Assert.Contains("401", r.StdErr);
        Assert.Contains("Unauthorized", r.StdErr);
        Assert.Contains($"token from file '{tokenFile}' (--token-file)", r.StdErr);
        Assert.DoesNotContain(Token, r.AllOutput);
        Assert.Single(fake.Log); // 401 is not retried

        var none = await Tool.RegisterAsync(fake, Tool.Granite);
        Assert.Equal(1, none.ExitCode);
        Assert.Contains("no token was sent", none.StdErr);
        Assert.Contains("--token-file", none.StdErr); // the library says what is wrong, mr-register names the option
    }

    [Fact]
    public async Task Forbidden_from_the_proxy_is_reported_with_the_env_token_file()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        fake.Token = "allowed";
        fake.ForbiddenToken = Token;
        using var dir = new TempDir("mr-token");
        var tokenFile = dir.WriteFile("kfp-token", Token);

        var r = await ToolRunner.RunAsync(Tool.Name, Tool.Args(fake, "register", Tool.Granite), Tool.Env(tokenPathVariable: tokenFile));

        Assert.Equal(1, r.ExitCode);
        Assert.Contains("403", r.StdErr);
        Assert.Contains("verb=get, resource=services", r.StdErr);
        Assert.Contains($"'{tokenFile}' ($KF_PIPELINES_SA_TOKEN_PATH)", r.StdErr);
        Assert.DoesNotContain(Token, r.AllOutput);
    }

    [Fact]
    public async Task Missing_token_file_is_a_clear_error()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        var r = await Tool.RegisterAsync(fake, [.. Tool.Granite, "--token-file", "/nonexistent/token"]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("token file '/nonexistent/token' does not exist", r.StdErr);
        Assert.Empty(fake.Log);
    }

    [Fact]
    public async Task Tls_with_a_private_ca_fails_without_ca_file_and_works_with_it()
    {
        var (cert, caPem) = TestCerts.Create();
        using var _ = cert;
        await using var fake = await FakeModelRegistry.StartAsync(cert);
        Assert.Equal("https", fake.Url.Scheme);
        using var dir = new TempDir("mr-ca");
        var caFile = dir.WriteFile("service-ca.crt", caPem);

        var untrusted = await Tool.RegisterAsync(fake, Tool.Granite);
        Assert.Equal(1, untrusted.ExitCode);
        Assert.Contains("SSL", untrusted.StdErr, StringComparison.OrdinalIgnoreCase);
        Assert.Empty(fake.Log);

        var trusted = await Tool.RegisterAsync(fake, [.. Tool.Granite, "--ca-file", caFile]);
        Assert.True(trusted.ExitCode == 0, trusted.ToString());
        Assert.Single(fake.Artifacts);

        var lookup = await Tool.RunAsync(fake, "lookup", "--model-name", Tool.Granite[1], "--version-name", Tool.Granite[3], "--ca-file", caFile);
        Assert.True(lookup.ExitCode == 0, lookup.ToString());
        Assert.Equal(Tool.Granite[5], lookup.StdOut.Trim());
    }

    [Fact]
    public async Task Lookup_prints_the_first_artifact_uri_and_writes_results()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        var model = fake.AddModel("granite");
        var version = fake.AddVersion(model, "full-fp16-2501");
        var first = fake.AddArtifact(version, "granite", "oci://q/granite:fp16");
        fake.AddArtifact(version, "second", "oci://q/ignored:1");
        using var results = new TempDir("mr-results");

        var r = await Tool.RunAsync(fake, "lookup", "--model-name", "granite", "--version-name", "full-fp16-2501", "--results-dir", results.Path);

        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal("oci://q/granite:fp16\n", r.StdOut);
        Assert.Equal(first, File.ReadAllText(Path.Combine(results.Path, "model-artifact-id")));
        Assert.Equal(version, File.ReadAllText(Path.Combine(results.Path, "model-version-id")));
        Assert.Equal("oci://q/granite:fp16", File.ReadAllText(Path.Combine(results.Path, "model-uri")));
        Assert.Empty(fake.Writes);
    }

    [Fact]
    public async Task Lookup_fails_clearly_for_a_missing_model_or_version_and_never_adopts_lookalikes()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        var model = fake.AddModel("granite-3b");
        var version = fake.AddVersion(model, "v1-0");
        fake.AddArtifact(version, "a", "oci://q/lookalike:1");

        var noModel = await Tool.RunAsync(fake, "lookup", "--model-name", "llama", "--version-name", "v1-0");
        Assert.Equal(1, noModel.ExitCode);
        Assert.Contains("registered model 'llama' does not exist", noModel.StdErr);
        Assert.Equal("", noModel.StdOut);

        var lookalikeModel = await Tool.RunAsync(fake, "lookup", "--model-name", "granite_3b", "--version-name", "v1-0");
        Assert.Equal(1, lookalikeModel.ExitCode);
        Assert.Contains("registered model 'granite_3b' does not exist", lookalikeModel.StdErr);

        var noVersion = await Tool.RunAsync(fake, "lookup", "--model-name", "granite-3b", "--version-name", "v1_0");
        Assert.Equal(1, noVersion.ExitCode);
        Assert.Contains("model version 'v1_0' of registered model 'granite-3b'", noVersion.StdErr);
        Assert.Contains("does not exist", noVersion.StdErr);

        // exact name plus look-alikes: the server's find answers 404 ("several"); the listing finds ours
        var exact = fake.AddModel("granite_3b");
        var exactVersion = fake.AddVersion(exact, "v1_0");
        fake.AddVersion(exact, "v1-0");
        fake.AddArtifact(exactVersion, "a", "oci://q/exact:1");
        var found = await Tool.RunAsync(fake, "lookup", "--model-name", "granite_3b", "--version-name", "v1_0");
        Assert.True(found.ExitCode == 0, found.ToString());
        Assert.Equal("oci://q/exact:1", found.StdOut.Trim());

        var emptyVersion = fake.AddVersion(exact, "empty");
        var noArtifact = await Tool.RunAsync(fake, "lookup", "--model-name", "granite_3b", "--version-name", "empty");
        Assert.Equal(1, noArtifact.ExitCode);
        Assert.Contains($"(id {emptyVersion})", noArtifact.StdErr);
        Assert.Contains("has no model artifact", noArtifact.StdErr);
    }
}
