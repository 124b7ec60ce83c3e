using System.Text.Json;

using ModelCar.TestSupport;

namespace ModelCar.MrRegister.Tests;

/// <summary>
/// The image's provenance as artifact customProperties (published mr-register against the strict
/// fake): --hf-repo, --hf-commit, --image-digest, --image-size, --platforms (the pipeline passes
/// hf-fetch's and oci-pack's results), and lookup --output json printing all of it.
/// </summary>
public sealed class ProvenanceTests
{
    private const string Digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    private static readonly string[] Provenance =
    [
        "--hf-repo", "ibm-granite/granite-3.1-8b", "--hf-commit", "0123456789abcdef0123456789abcdef01234567",
        "--image-digest", Digest, "--image-size", "17179869184", "--platforms", "linux/amd64, linux/arm64",
    ];

    [Fact]
    public async Task Provenance_options_become_artifact_properties_and_lookup_json_prints_them()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        var r = await Tool.RegisterAsync(fake, [.. Tool.Granite, .. Provenance, "--property", "team=ml", "--model-format-name", "vLLM"]);
        Assert.True(r.ExitCode == 0, r.ToString());

        var props = Assert.Single(fake.Artifacts)["customProperties"]!.AsObject();
        Assert.Equal("ibm-granite/granite-3.1-8b", (string?)props["hf-repo"]!["string_value"]);
        Assert.Equal("0123456789abcdef0123456789abcdef01234567", (string?)props["hf-commit"]!["string_value"]);
        Assert.Equal(Digest, (string?)props["image-digest"]!["string_value"]);
        // 16 GiB is over the API's 9-digit int_value: a string
        Assert.Equal("MetadataStringValue", (string?)props["image-size"]!["metadataType"]);
        Assert.Equal("17179869184", (string?)props["image-size"]!["string_value"]);
        Assert.Equal("linux/amd64,linux/arm64", (string?)props["platforms"]!["string_value"]);
        Assert.Equal("ml", (string?)props["team"]!["string_value"]);

        // a re-run with the same provenance writes nothing
        int writes = fake.Log.Count(l => l.IsWrite);
        var again = await Tool.RegisterAsync(fake, [.. Tool.Granite, .. Provenance, "--property", "team=ml", "--model-format-name", "vLLM"]);
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Equal(writes, fake.Log.Count(l => l.IsWrite));

        var text = await Tool.RunAsync(fake, "lookup", "--model-name", Tool.Granite[1], "--version-name", Tool.Granite[3]);
        Assert.Equal("oci://quay.io/org/granite:w4a16-2501", text.StdOut.Trim());
        var lookup = await Tool.RunAsync(fake, "lookup", "--model-name", Tool.Granite[1], "--version-name", Tool.Granite[3], "--output", "json");
        Assert.True(lookup.ExitCode == 0, lookup.ToString());
        var json = JsonDocument.Parse(lookup.StdOut).RootElement;
        Assert.Equal("oci://quay.io/org/granite:w4a16-2501", json.GetProperty("uri").GetString());
        Assert.Equal(Tool.Granite[1], json.GetProperty("modelName").GetString());
        Assert.Equal(Tool.Granite[3], json.GetProperty("versionName").GetString());
        Assert.Equal(Tool.Ids(r)["model-artifact-id"], json.GetProperty("modelArtifactId").GetString());
        Assert.Equal(Tool.Ids(r)["model-version-id"], json.GetProperty("modelVersionId").GetString());
        Assert.Equal(Tool.Ids(r)["registered-model-id"], json.GetProperty("registeredModelId").GetString());
        Assert.Equal("vLLM", json.GetProperty("modelFormatName").GetString());
        var printed = json.GetProperty("customProperties");
        Assert.Equal(["hf-commit", "hf-repo", "image-digest", "image-size", "platforms", "team"], printed.EnumerateObject().Select(p => p.Name));
        Assert.Equal(Digest, printed.GetProperty("image-digest").GetString());
        Assert.Equal("17179869184", printed.GetProperty("image-size").GetString());
        Assert.Equal("linux/amd64,linux/arm64", printed.GetProperty("platforms").GetString());
    }

    [Theory]
    [InlineData("--image-digest", "sha256:abc", "is not sha256:")]
    [InlineData("--image-size", "-5", "is not a number of bytes")]
    [InlineData("--platforms", "linux/amd64,,", "is not a comma-separated list")]
    public async Task Bad_provenance_values_are_usage_errors_before_any_request(string option, string value, string message)
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        var r = await Tool.RegisterAsync(fake, [.. Tool.Granite, option, value]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(message, r.StdErr);
        Assert.Contains($"mr-register: error: {option} '{value}' {message}", r.StdErr); // the library says what is wrong, the command names the option
        Assert.Empty(fake.Log);
    }

    [Fact]
    public async Task A_provenance_key_given_twice_is_a_usage_error()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        var r = await Tool.RegisterAsync(fake, [.. Tool.Granite, "--image-digest", Digest, "--property", "image-digest=sha256:x"]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("give it once", r.StdErr);
    }

    [Fact]
    public async Task Empty_provenance_values_from_tekton_defaults_are_not_given()
    {
        await using var fake = await FakeModelRegistry.StartAsync();
        var r = await Tool.RegisterAsync(fake, [.. Tool.Granite, "--hf-repo", "", "--image-size", "", "--platforms", ""]);
        Assert.True(r.ExitCode == 0, r.ToString());
        var props = Assert.Single(fake.Artifacts)["customProperties"];
        Assert.True(props is null || props.AsObject().Count == 0, props?.ToJsonString());
        Assert.DoesNotContain(fake.Log, l => l.IsWrite && l.Body.Contains("customProperties", StringComparison.Ordinal));
    }
}
