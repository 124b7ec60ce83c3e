using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using ModelCar.ModelRegistry;

using ModelCar.TestSupport;

namespace ModelCar.MrRegister.Tests;

/// <summary>
/// A Model Registry that lies (issue 21 items 9–11): answers naming another model or version, ids that are null,
/// page tokens that never end, huge answers, and names the API cannot look up. The PUBLISHED mr-register against
/// the strict fake with <see cref="FakeModelRegistry.Fault"/> playing the hostile part.
/// </summary>
public sealed class HostileRegistryTests
{
    private const string Model = "granite-3.1-8b";
    private const string Version = "quantized-w4a16-2501";

    private static string ErrorLine(ModelCar.TestSupport.ToolResult r)
    {
        Assert.DoesNotContain("   at ", r.StdErr);
        return Assert.Single(r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("mr-register: error: ", StringComparison.Ordinal));
    }

    private static bool IsLookup(LoggedRequest req, string what) => req.Method == "GET" && req.Path == FakeModelRegistry.Prefix + "/" + what;

    [Fact]
    public async Task A_name_lookup_answering_another_models_id_fails_naming_both()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        var other = fake.AddModel("someone-elses-model");
        // the lookup by name says "granite-3.1-8b" but hands out the id of another model
        fake.Fault = req => IsLookup(req, "registered_model") ? new FakeReply(200, new JsonObject { ["id"] = other, ["name"] = Model }.ToJsonString()) : null;
        var r = await Tool.RegisterAsync(fake, Tool.Granite);
        Assert.Equal(1, r.ExitCode);
        var line = ErrorLine(r);
        Assert.Contains($"registered model '{Model}': the lookup by name answered id {other}", line);
        Assert.Contains($"registered model 'someone-elses-model' (id {other})", line);
        Assert.Empty(fake.Writes);
        Assert.Empty(fake.Versions);
    }

    [Fact]
    public async Task A_version_lookup_answering_a_version_of_another_model_fails_naming_both()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        var mine = fake.AddModel(Model);
        var other = fake.AddModel("other-model");
        var foreign = fake.AddVersion(other, Version);
        fake.Fault = req => IsLookup(req, "model_version")
            ? new FakeReply(200, new JsonObject { ["id"] = foreign, ["name"] = Version, ["registeredModelId"] = other }.ToJsonString())
            : null;
        var r = await Tool.RegisterAsync(fake, Tool.Granite);
        Assert.Equal(1, r.ExitCode);
        var line = ErrorLine(r);
        Assert.Contains($"model version '{Version}' of registered model '{Model}' (id {mine})", line);
        Assert.Contains($"model version '{Version}' (id {foreign}) of registered model id {other}", line);
        Assert.Empty(fake.Writes);
        Assert.Empty(fake.Artifacts);
    }

    [Fact]
    public async Task A_created_version_under_another_model_fails_naming_both()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        var mine = fake.AddModel(Model);
        fake.Fault = req => req.Method == "POST" && req.Path.EndsWith("/model_versions", StringComparison.Ordinal)
            ? new FakeReply(201, new JsonObject { ["id"] = "77", ["name"] = Version, ["registeredModelId"] = "76" }.ToJsonString())
            : null;
        var r = await Tool.RegisterAsync(fake, Tool.Granite);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains($"model version '{Version}' of registered model '{Model}' (id {mine}): the server answered the create with model version '{Version}' (id 77) of registered model id 76", ErrorLine(r));
        Assert.DoesNotContain(fake.Log, l => l.Path.Contains("/model_versions/77", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_created_model_of_another_name_fails_naming_both()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        fake.Fault = req => req.Method == "POST" && req.Path.EndsWith("/registered_models", StringComparison.Ordinal)
            ? new FakeReply(201, new JsonObject { ["id"] = "5", ["name"] = "not-granite" }.ToJsonString())
            : null;
        var r = await Tool.RegisterAsync(fake, Tool.Granite);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains($"registered model '{Model}': the server answered the create with registered model 'not-granite' (id 5)", ErrorLine(r));
        Assert.Single(fake.Writes);
    }

    [Theory]
    [InlineData("registered_model")]
    [InlineData("model_version")]
    public async Task A_null_id_from_the_server_is_refused_and_the_placeholder_never_sent(string lookup)
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        var mine = fake.AddModel(Model);
        fake.Fault = req => IsLookup(req, lookup)
            ? new FakeReply(200, new JsonObject { ["id"] = null, ["name"] = lookup == "registered_model" ? Model : Version, ["registeredModelId"] = mine }.ToJsonString())
            : null;
        var r = await Tool.RegisterAsync(fake, Tool.Granite);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("without an id (null or empty)", ErrorLine(r));
        Assert.DoesNotContain(fake.Log, l => l.Path.Contains(Registrar.NewId, StringComparison.Ordinal) || l.Body.Contains($"\"{Registrar.NewId}\"", StringComparison.Ordinal));
        Assert.Empty(fake.Writes);
    }

    [Fact]
    public async Task A_listing_whose_page_token_never_ends_stops_at_the_page_bound()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        int pages = 0;
        fake.Fault = req =>
        {
            if (IsLookup(req, "registered_model"))
            {
                return new FakeReply(404, """{"code":"Not Found","message":"multiple registered models found"}""");
            }
            if (IsLookup(req, "registered_models"))
            {
                int n = Interlocked.Increment(ref pages);
                return new FakeReply(200, new JsonObject
                {
                    ["items"] = new JsonArray(new JsonObject { ["id"] = n.ToString(), ["name"] = "look-alike" }),
                    ["nextPageToken"] = $"token-{n}",
                    ["pageSize"] = 1,
                    ["size"] = 1,
                }.ToJsonString());
            }
            return null;
        };
        var started = DateTime.UtcNow;
        var r = await Tool.RunAsync(fake, "lookup", "--model-name", Model, "--version-name", Version);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains($"listing registered models does not end: {ModelRegistryClient.DefaultMaxListPages} pages read", ErrorLine(r));
        Assert.Equal(ModelRegistryClient.DefaultMaxListPages, pages);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(100));
    }

    [Fact]
    public async Task An_answer_larger_than_the_bound_fails_with_one_line()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        var huge = new JsonObject { ["id"] = "1", ["name"] = Model, ["description"] = new string('x', 5 << 20) }.ToJsonString();
        fake.Fault = req => IsLookup(req, "registered_model") ? new FakeReply(200, huge) : null;
        var r = await Tool.RegisterAsync(fake, Tool.Granite);
        Assert.Equal(1, r.ExitCode);
        var line = ErrorLine(r);
        Assert.True(line.Contains("answer is larger than 4.0 MiB", StringComparison.Ordinal), line);
        Assert.Single(fake.Log); // a bound, not a transient failure: not retried
        Assert.Empty(fake.Writes);
    }

    /// <summary>The published spec's (v1alpha3) pattern for ?name= values, written out here, not taken from the code.</summary>
    private static readonly Regex SpecNamePattern = new(@"^[\x20-\x7E]+$");

    /// <summary>The pattern as OpenAPI means it (ECMA-262): '$' is the end of the value (.NET's also matches before a final newline).</summary>
    private static bool SpecMatches(string s) => SpecNamePattern.Match(s) is { Success: true } m && m.Length == s.Length;

    [Theory]
    [InlineData("modèle", "model")]
    [InlineData("emoji-\U0001F600", "model")]
    [InlineData("tab\there", "version")]
    [InlineData("del\u007f", "version")]
    [InlineData("nbsp\u00a0x", "model")]
    public async Task A_name_outside_the_specs_pattern_is_exit_2_before_any_request(string name, string which)
    {
        Assert.False(SpecMatches(name));
        await using var fake = await FakeModelRegistry.StartAsync();
        string flag = which == "model" ? "--model-name" : "--version-name";
        string[] names = which == "model" ? ["--model-name", name, "--version-name", Version] : ["--model-name", Model, "--version-name", name];
        foreach (var sub in new[] { "register", "lookup" })
        {
            string[] rest = sub == "register" ? [.. names, "--uri", "oci://quay.io/org/granite:1"] : names;
            var r = await Tool.RunAsync(fake, sub, rest);
            Assert.True(r.ExitCode == 2, r.ToString());
            var line = ErrorLine(r);
            Assert.Contains($"{flag} '", line);
            Assert.Contains(@"must match ^[\x20-\x7E]+$", line);
            Assert.Empty(fake.Log);
        }
    }

    [Fact]
    public async Task Names_inside_the_specs_pattern_are_registered_even_with_spaces_and_wildcards()
    {
        const string name = "a b_%~ (v1) \"q\" \\ end";
        Assert.True(SpecMatches(name));
        Assert.True(RegistryNames.IsValid(name));
        await using var fake = await FakeModelRegistry.StartAsync();
        var r = await Tool.RegisterAsync(fake, "--model-name", name, "--version-name", name, "--uri", "oci://quay.io/org/x:1");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal(name, (string)Assert.Single(fake.Models)["name"]!);
    }

    [Fact]
    public void The_name_check_agrees_with_the_specs_pattern_on_every_char_up_to_U_0100()
    {
        for (int c = 0; c <= 0x100; c++)
        {
            var s = "a" + (char)c;
            Assert.Equal(SpecMatches(s), RegistryNames.IsValid(s));
        }
        Assert.False(RegistryNames.IsValid(""));
        Assert.False(RegistryNames.IsValid("name\n"));
        Assert.Equal(@"^[\x20-\x7E]+$", RegistryNames.Pattern);
    }
}
