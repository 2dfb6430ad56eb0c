Function XC_DOT(a, b)
    #If App = "Microsoft Excel" Then
        If TypeOf Application.Caller Is Range Then On Error GoTo failed
        XC_DOT = XLPy.CallUDF("xlcollab.excel", "XC_DOT", Array(a, b), ThisWorkbook, Application.Caller)
        Exit Function
    #Else
        XC_DOT = XLPy.CallUDF("xlcollab.excel", "XC_DOT", Array(a, b))
        Exit Function
    #End If
failed:
    XC_DOT = Err.Description
End Function

Function XC_FIT(ratings, Optional factors, Optional epochs)
    #If App = "Microsoft Excel" Then
        If TypeOf Application.Caller Is Range Then On Error GoTo failed
        XC_FIT = XLPy.CallUDF("xlcollab.excel", "XC_FIT", Array(ratings, factors, epochs), ThisWorkbook, Application.Caller)
        Exit Function
    #Else
        XC_FIT = XLPy.CallUDF("xlcollab.excel", "XC_FIT", Array(ratings, factors, epochs))
        Exit Function
    #End If
failed:
    XC_FIT = Err.Description
End Function

Function XC_PREDICT(user, movie, Optional model)
    #If App = "Microsoft Excel" Then
        If TypeOf Application.Caller Is Range Then On Error GoTo failed
        XC_PREDICT = XLPy.CallUDF("xlcollab.excel", "XC_PREDICT", Array(user, movie, model, Nothing), ThisWorkbook, Application.Caller)
        Exit Function
    #Else
        XC_PREDICT = XLPy.CallUDF("xlcollab.excel", "XC_PREDICT", Array(user, movie, model, Nothing))
        Exit Function
    #End If
failed:
    XC_PREDICT = Err.Description
End Function

Function XC_RECOMMEND(user, Optional n, Optional model)
    #If App = "Microsoft Excel" Then
        If TypeOf Application.Caller Is Range Then On Error GoTo failed
        XC_RECOMMEND = XLPy.CallUDF("xlcollab.excel", "XC_RECOMMEND", Array(user, n, model, Nothing), ThisWorkbook, Application.Caller)
        Exit Function
    #Else
        XC_RECOMMEND = XLPy.CallUDF("xlcollab.excel", "XC_RECOMMEND", Array(user, n, model, Nothing))
        Exit Function
    #End If
failed:
    XC_RECOMMEND = Err.Description
End Function

Function XC_RMSE(actual, predicted)
    #If App = "Microsoft Excel" Then
        If TypeOf Application.Caller Is Range Then On Error GoTo failed
        XC_RMSE = XLPy.CallUDF("xlcollab.excel", "XC_RMSE", Array(actual, predicted), ThisWorkbook, Application.Caller)
        Exit Function
    #Else
        XC_RMSE = XLPy.CallUDF("xlcollab.excel", "XC_RMSE", Array(actual, predicted))
        Exit Function
    #End If
failed:
    XC_RMSE = Err.Description
End Function

Function XC_SIMILAR(movie, Optional n, Optional model)
    #If App = "Microsoft Excel" Then
        If TypeOf Application.Caller Is Range Then On Error GoTo failed
        XC_SIMILAR = XLPy.CallUDF("xlcollab.excel", "XC_SIMILAR", Array(movie, n, model, Nothing), ThisWorkbook, Application.Caller)
        Exit Function
    #Else
        XC_SIMILAR = XLPy.CallUDF("xlcollab.excel", "XC_SIMILAR", Array(movie, n, model, Nothing))
        Exit Function
    #End If
failed:
    XC_SIMILAR = Err.Description
End Function

