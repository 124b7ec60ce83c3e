using System.Text.Json.Serialization.Metadata;
using Flurl.Http;

namespace ModelCar.Common.Http;

/// <summary>
/// Flurl clients for the JSON APIs (Model Registry, Hub API, token endpoints), sharing the tool's
/// HttpClient: source-generated JSON, no automatic redirects, every status returned to the caller
/// (the protocol clients map errors themselves). Query parameters are set with name/value
/// overloads only: anonymous-object helpers drop values under AOT.
/// </summary>
public static class FlurlSetup
{
    public static IFlurlClient Create(HttpClient http, IJsonTypeInfoResolver json, string? baseUrl = null)
    {
        var client = new FlurlClient(http, baseUrl);
        client.Settings.JsonSerializer = new SourceGenJsonSerializer(json);
        client.Settings.Redirects.Enabled = false;
        client.Settings.AllowedHttpStatusRange = "*";
        client.Settings.Timeout = null;
        return client;
    }
}
