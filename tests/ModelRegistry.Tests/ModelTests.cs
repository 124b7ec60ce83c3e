using System.Text.Json;
using ModelCar.ModelRegistry;

namespace ModelCar.ModelRegistry.Tests;

/// <summary>The Model Registry library's bodies, merge rule and base URL, without a server.</summary>
public sealed class ModelTests
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
}
