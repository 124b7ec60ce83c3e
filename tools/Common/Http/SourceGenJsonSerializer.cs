using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Flurl.Http.Configuration;

namespace ModelCar.Common.Http;

/// <summary>
/// Flurl's ISerializer on top of a source-generated JsonSerializerContext, so Flurl never falls
/// back to reflection-based System.Text.Json under Native AOT. A type missing from the context
/// fails loudly instead of silently working only under JIT.
/// </summary>
public sealed class SourceGenJsonSerializer(IJsonTypeInfoResolver resolver, JsonSerializerOptions? template = null) : ISerializer
{
    private readonly JsonSerializerOptions _options = new(template ?? new JsonSerializerOptions())
    {
        TypeInfoResolver = resolver,
    };

    public string Serialize(object obj)
    {
        if (obj is null)
        {
            return "null";
        }
        return JsonSerializer.Serialize(obj, Info(obj.GetType()));
    }

    public T Deserialize<T>(string s) => (T)JsonSerializer.Deserialize(s, Info(typeof(T)))!;

    public T Deserialize<T>(Stream stream) => (T)JsonSerializer.Deserialize(stream, Info(typeof(T)))!;

    private JsonTypeInfo Info(Type type) => _options.GetTypeInfo(type);
}
