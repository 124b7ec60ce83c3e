using System.Text.Json;
using ModelCar.ModelRegistry;

namespace ModelCar.ModelRegistry.Tests;

/// <summary>Custom properties and the version pattern of a registration, checked before any request.</summary>
public sealed class RegistrationInputTests
{
    [Fact]
    public void Properties_are_typed_and_int_is_a_string()
    {
        var p = RegistrationProperties.Parse(["a=x=y", "n:int=-5", "d:double=1.5", "b:bool=false", "url:port=1"]);
        Assert.Equal("x=y", p["a"].StringValue);
        Assert.Equal("-5", p["n"].IntValue);
        Assert.Equal(1.5, p["d"].DoubleValue);
        Assert.False(p["b"].BoolValue);
        Assert.Equal("1", p["url:port"].StringValue); // an unknown ":type" stays part of the key
        Assert.Equal("""{"metadataType":"MetadataIntValue","int_value":"-5"}""", JsonSerializer.Serialize(p["n"], ModelRegistryJson.Default.MetadataValue));
        var twice = Assert.Throws<RegistrationInputException>(() => RegistrationProperties.Parse(["k=1", "k:int=2"]));
        Assert.Equal(RegistrationField.Property, twice.Field);
        Assert.True(twice.IsInvalidInput);
        Assert.Equal("property 'k' is given twice", twice.Message);
    }

    [Fact]
    public void Invalid_version_pattern_is_invalid_input_naming_the_pattern()
    {
        var e = Assert.Throws<RegistrationInputException>(() => RegistrationProperties.CheckVersionPattern("v", "("));
        Assert.True(e.IsInvalidInput);
        Assert.Equal(RegistrationField.VersionPattern, e.Field);
        Assert.StartsWith("version pattern '(' is not a valid regex: Invalid pattern '('", e.Message);
        // a caller names the value its own way (mr-register: its options), the rest of the line is the same
        Assert.StartsWith("--version-pattern '(' is not a valid regex: Invalid pattern '('", e.Render(f => f == RegistrationField.VersionPattern ? "--version-pattern" : "?"));
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
            RegistrationProperties.CheckVersionPattern(name, pattern);
        }
        else
        {
            var e = Assert.Throws<RegistrationInputException>(() => RegistrationProperties.CheckVersionPattern(name, pattern));
            Assert.Equal($"version name '{name}' does not match version pattern '{pattern}'", e.Message);
        }
    }

    [Fact]
    public void The_input_becomes_a_request_with_blank_values_left_out_and_provenance_as_string_properties()
    {
        var request = new RegistrationInput
        {
            ModelName = "m",
            VersionName = "v1",
            Uri = "oci://q/m:1",
            ModelFormatName = "vLLM",
            Author = " ",
            Owner = "",
            Properties = ["k:int=3"],
            Provenance = new Provenance { HfCommit = "c0ffee", ImageSize = "12345678901", Platforms = "linux/amd64, linux/arm64", HfRepo = "" },
            VersionPattern = "v\\d",
        }.ToRequest();
        Assert.Equal("vLLM", request.ModelFormatName);
        Assert.Null(request.Author);
        Assert.Null(request.Owner);
        Assert.Equal("3", request.Properties["k"].IntValue);
        Assert.Equal("c0ffee", request.Properties[ModelCarProperties.HfCommit].StringValue);
        Assert.Equal("12345678901", request.Properties[ModelCarProperties.ImageSize].StringValue);
        Assert.Equal("linux/amd64,linux/arm64", request.Properties[ModelCarProperties.Platforms].StringValue);
        Assert.False(request.Properties.ContainsKey(ModelCarProperties.HfRepo));
        var bad = Assert.Throws<RegistrationInputException>(() => new RegistrationInput { ModelName = "m", VersionName = "latest", Uri = "u", VersionPattern = "v\\d" }.ToRequest());
        Assert.Equal(RegistrationField.VersionName, bad.Field);
    }
}
