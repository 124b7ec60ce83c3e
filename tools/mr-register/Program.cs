using ModelCar.Common.Cli;

return await ToolApp.RunAsync("mr-register", ModelCar.MrRegister.MrRegisterCommand.Create(), args);
