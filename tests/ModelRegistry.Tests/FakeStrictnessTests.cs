using System.Net;
using System.Text;
using System.Text.Json.Nodes;

using ModelCar.TestSupport;

namespace ModelCar.ModelRegistry.Tests;

/// <summary>The fake is the judge of "only defined fields": prove it is as strict as the real server.</summary>
public sealed class FakeStrictnessTests : IAsyncLifetime
{
    private FakeModelRegistry _fake = null!;
    private readonly HttpClient _http = new();

    public async Task InitializeAsync() => _fake = await FakeModelRegistry.StartAsync();

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _fake.DisposeAsync();
    }

    private async Task<(int Status, string Body)> Send(string method, string path, string? body = null)
    {
        using var req = new HttpRequestMessage(new HttpMethod(method), new Uri(_fake.Url, FakeModelRegistry.Prefix + path));
        if (body is not null)
        {
            req.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }
        using var resp = await _http.SendAsync(req);
        return ((int)resp.StatusCode, await resp.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Unknown_field_is_400_with_go_message()
    {
        var (status, body) = await Send("POST", "/registered_models", """{"name":"m","x":1}""");
        Assert.Equal(400, status);
        Assert.Equal("""{"code":"Bad Request","message":"json: unknown field \u0022x\u0022"}""", body);
    }

    [Fact]
    public async Task Missing_required_is_422_and_duplicates_409_or_legacy_500()
    {
        Assert.Equal(422, (await Send("POST", "/registered_models", """{"description":"d"}""")).Status);
        Assert.Equal(422, (await Send("POST", "/model_versions", """{"name":"v"}""")).Status);
        Assert.Equal(201, (await Send("POST", "/registered_models", """{"name":"m"}""")).Status);
        var dup = await Send("POST", "/registered_models", """{"name":"m"}""");
        Assert.Equal(409, dup.Status);
        Assert.Equal("Conflict", (string)JsonNode.Parse(dup.Body)!["code"]!);
        _fake.LegacyDuplicates = true;
        var legacy = await Send("POST", "/registered_models", """{"name":"m"}""");
        Assert.Equal(500, legacy.Status);
        Assert.Equal("", (string)JsonNode.Parse(legacy.Body)!["code"]!);
    }

    [Fact]
    public async Task Read_only_fields_are_rejected_on_patch_and_custom_properties_are_replaced()
    {
        var id = _fake.AddModel("m");
        var v = _fake.AddVersion(id, "v");
        var a = _fake.AddArtifact(v, "a", "oci://x", new JsonObject { ["keep"] = new JsonObject { ["metadataType"] = "MetadataStringValue", ["string_value"] = "1" } });
        Assert.Equal(400, (await Send("PATCH", $"/model_artifacts/{a}", """{"name":"b"}""")).Status);
        Assert.Equal(400, (await Send("PATCH", $"/model_artifacts/{a}", """{"id":"5"}""")).Status);
        Assert.Equal(400, (await Send("PATCH", $"/model_versions/{v}", """{"registeredModelId":"1"}""")).Status);
        Assert.Equal(400, (await Send("PATCH", $"/registered_models/{id}", """{"createTimeSinceEpoch":"1"}""")).Status);
        var ok = await Send("PATCH", $"/model_artifacts/{a}", """{"customProperties":{"new":{"metadataType":"MetadataIntValue","int_value":"3"}}}""");
        Assert.Equal(200, ok.Status);
        var props = JsonNode.Parse(ok.Body)!["customProperties"]!.AsObject();
        Assert.Equal(["new"], props.Select(p => p.Key));
    }

    [Fact]
    public async Task Typed_values_are_checked()
    {
        Assert.Equal(400, (await Send("POST", "/registered_models", """{"name":"m","customProperties":{"n":{"metadataType":"MetadataIntValue","int_value":5}}}""")).Status);
        Assert.Equal(400, (await Send("POST", "/registered_models", """{"name":"m","customProperties":{"n":{"metadataType":"MetadataIntValue","string_value":"5"}}}""")).Status);
        Assert.Equal(201, (await Send("POST", "/registered_models", """{"name":"m","customProperties":{"n":{"metadataType":"MetadataIntValue","int_value":"5"}}}""")).Status);
    }

    [Fact]
    public async Task Find_is_like_and_404_for_none_or_several_ids_are_numeric()
    {
        _fake.AddModel("a-b");
        var single = await Send("GET", "/registered_model?name=a_b");
        Assert.Equal(200, single.Status);
        Assert.Equal("a-b", (string)JsonNode.Parse(single.Body)!["name"]!); // the LIKE quirk
        _fake.AddModel("a_b");
        Assert.Equal(404, (await Send("GET", "/registered_model?name=a_b")).Status);
        Assert.Equal(404, (await Send("GET", "/registered_model?name=zzz")).Status);
        Assert.Equal(400, (await Send("GET", "/registered_model")).Status);
        Assert.Equal(400, (await Send("GET", "/registered_models/abc")).Status);
        Assert.Equal(400, (await Send("GET", "/model_version?name=v")).Status);
        var list = JsonNode.Parse((await Send("GET", "/registered_models?pageSize=1")).Body)!;
        Assert.Equal("1", (string)list["nextPageToken"]!);
        Assert.IsType<string>((string)list["items"]![0]!["id"]!);
    }
}
