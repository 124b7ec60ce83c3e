using System.Text.Json;
using ModelCar.Common.Cli;
using ModelCar.ModelRegistry;

namespace ModelCar.MrRegister.Tests;

public sealed class UnitTests
{
    [Fact]
    public void Create_and_update_bodies_omit_unset_fields()
    {
        Assert.Equal("""{"artifactType":"model-artifact","name":"m","uri":"oci://x"}""",
            JsonSerializer.Serialize(new ModelArtifactCreate { Name = "m", Uri = "oci://x" }, ModelRegistryJson.Default.ModelArtifactCreate));
        Assert.Equal("""{"artifactType":"model-artifact","uri":"oci://y"}""",
            JsonSerializer.Serialize(new ModelArtifactUpdate { Uri = "oci://y" }, ModelRegistryJson.Default.ModelArtifactUpdate));
        Assert.Equal("""{"name":"v","registeredModelId":"7"}""",
            JsonSerializer.Serialize(new ModelVersionCreate { Name = "v", RegisteredModelId = "7" }, ModelRegistryJson.Default.ModelVersionCreate));
        Assert.Equal("{}", JsonSerializer.Serialize(new RegisteredModelUpdate(), ModelRegistryJson.Default.RegisteredModelUpdate));
    }

    [Fact]
    public void Properties_are_typed_and_int_is_a_string()
    {
        var p = MrRegisterCommand.ParseProperties(["a=x=y", "n:int=-5", "d:double=1.5", "b:bool=false", "url:port=1"]);
        Assert.Equal("x=y", p["a"].StringValue);
        Assert.Equal("-5", p["n"].IntValue);
        Assert.Equal(1.5, p["d"].DoubleValue);
        Assert.False(p["b"].BoolValue);
        Assert.Equal("1", p["url:port"].StringValue); // an unknown ":type" stays part of the key
        Assert.Equal("""{"metadataType":"MetadataIntValue","int_value":"-5"}""", JsonSerializer.Serialize(p["n"], ModelRegistryJson.Default.MetadataValue));
        Assert.Throws<UsageException>(() => MrRegisterCommand.ParseProperties(["k=1", "k:int=2"]));
    }

    [Fact]
    public void Update_merges_properties_and_is_null_when_nothing_differs()
    {
        var req = new RegistrationRequest
        {
            ModelName = "m", VersionName = "v", Uri = "oci://x", ModelFormatName = "vLLM",
            Properties = new Dictionary<string, MetadataValue> { ["n"] = MetadataValue.Of(1) },
        };
        var same = new ModelArtifact { Id = "1", Uri = "oci://x", ModelFormatName = "vLLM", CustomProperties = new() { ["n"] = MetadataValue.Of(1), ["other"] = MetadataValue.Of("o") } };
        Assert.Null(Registrar.UpdateFor(req, same));

        var differs = new ModelArtifact { Id = "1", Uri = "oci://old", CustomProperties = new() { ["other"] = MetadataValue.Of("o") } };
        var update = Registrar.UpdateFor(req, differs)!;
        Assert.Equal("oci://x", update.Uri);
        Assert.Equal("vLLM", update.ModelFormatName);
        Assert.Equal(["n", "other"], update.CustomProperties!.Keys.Order());
    }

    [Theory]
    [InlineData("https://mr.example:8443", "https://mr.example:8443/api/model_registry/v1alpha3")]
    [InlineData("https://mr.example/", "https://mr.example/api/model_registry/v1alpha3")]
    [InlineData("https://mr.example/api/model_registry/v1alpha3", "https://mr.example/api/model_registry/v1alpha3")]
    [InlineData("http://gw/prefix/", "http://gw/prefix/api/model_registry/v1alpha3")]
    public void Base_url_adds_the_api_prefix_once(string server, string expected) =>
        Assert.Equal(expected, ModelRegistryClient.BaseUrlFor(new Uri(server)));

    [Fact]
    public void Invalid_version_pattern_is_usage_error_naming_the_pattern()
    {
        var e = Assert.Throws<UsageException>(() => MrRegisterCommand.CheckVersionPattern("v", "("));
        Assert.Equal(2, e.ExitCode);
        Assert.StartsWith("--version-pattern '(' is not a valid regex: Invalid pattern '('", e.Message);
    }

    [Theory]
    [InlineData("quantized-w4a16-2501", true)]
    [InlineData("full-fp16-2501", true)]
    [InlineData("full-fp16-2501-extra", false)]
    [InlineData("latest", false)]
    public void Version_pattern_is_anchored(string name, bool ok)
    {
        const string pattern = @"(quantized-w4a16|full-fp16)-\d{4}";
        if (ok)
        {
            MrRegisterCommand.CheckVersionPattern(name, pattern);
        }
        else
        {
            Assert.Equal(2, Assert.Throws<UsageException>(() => MrRegisterCommand.CheckVersionPattern(name, pattern)).ExitCode);
        }
    }
}
