using System.Text.Json;
using ModelCar.Common.Cli;
using ModelCar.ModelRegistry;

namespace ModelCar.MrRegister.Tests;

public sealed class UnitTests
{

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
