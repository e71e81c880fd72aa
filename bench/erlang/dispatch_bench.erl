%% Erlang/OTP peer: the same dispatch pattern written directly in Erlang.
%% Per message a conversation process links to the consumer chosen by the
%% same rule (least loaded = the first idle one when dispatching one at a
%% time; round robin over the live set under load), forwards, and waits for
%% the ack or the EXIT; on EXIT it re-routes excluding the crashed consumer.
%% Usage: erl -noshell -pa DIR -s dispatch_bench main w1|w2|w3 N [WINDOW]
-module(dispatch_bench).
-export([main/1, consumer/1]).

main([W, NStr | Rest]) ->
    N = list_to_integer(atom_to_list(NStr)),
    case W of
        w1 -> w1(N);
        w2 -> w2(N, case Rest of [Win] -> list_to_integer(atom_to_list(Win)); _ -> 1024 end);
        w3 -> w3(N)
    end,
    halt(0).

consumer(Mode) ->
    receive
        {msg, Conv, Ref} when Mode =:= crash -> exit({crashed, Conv, Ref});
        {msg, Conv, Ref} -> Conv ! {ack, Ref, self()}, consumer(Mode);
        stop -> ok
    end.

consumers(K) -> [spawn(?MODULE, consumer, [ack]) || _ <- lists:seq(1, K)].

%% A conversation: link before forwarding, trap exits, re-route on EXIT.
conversation(Caller, Candidates, Excluded, Start) ->
    case [C || C <- Candidates, not lists:member(C, Excluded)] of
        [] -> Caller ! {failed, self()};
        [C | _] ->
            link(C),
            Ref = make_ref(),
            C ! {msg, self(), Ref},
            receive
                {ack, Ref, C} -> unlink(C), Caller ! {delivered, self(), C, Start};
                {'EXIT', C, _Reason} -> conversation(Caller, Candidates, [C | Excluded], Start)
            end
    end.

dispatch(Caller, Candidates) ->
    Start = erlang:monotonic_time(nanosecond),
    spawn(fun() -> process_flag(trap_exit, true), conversation(Caller, Candidates, [], Start) end).

percentile(Sorted, Q) ->
    Len = length(Sorted),
    lists:nth(max(1, min(Len, round(Q * (Len - 1)) + 1)), Sorted).

report_latency(Workload, N, Samples, Seconds) ->
    Sorted = lists:sort(Samples),
    io:format("{\"system\":\"erlang\",\"workload\":\"~s\",\"n\":~b,\"p50_ns\":~b,\"p99_ns\":~b,"
              "\"p999_ns\":~b,\"max_ns\":~b,\"rate\":~b}~n",
              [Workload, N, percentile(Sorted, 0.5), percentile(Sorted, 0.99), percentile(Sorted, 0.999),
               lists:last(Sorted), round(N / Seconds)]).

blocking(Cs, N) ->
    [begin
         T0 = erlang:monotonic_time(nanosecond),
         Pid = dispatch(self(), Cs),
         receive {delivered, Pid, _, _} -> ok end,
         erlang:monotonic_time(nanosecond) - T0
     end || _ <- lists:seq(1, N)].

w1(N) ->
    Cs = consumers(4),
    _ = blocking(Cs, N div 10 + 1),
    T0 = erlang:monotonic_time(nanosecond),
    Samples = blocking(Cs, N),
    report_latency("w1", N, Samples, (erlang:monotonic_time(nanosecond) - T0) / 1.0e9).

w2(N, Window) ->
    Cs = list_to_tuple(consumers(4)),
    T0 = erlang:monotonic_time(nanosecond),
    pump(Cs, N, Window, 0, 0, 0),
    Seconds = (erlang:monotonic_time(nanosecond) - T0) / 1.0e9,
    io:format("{\"system\":\"erlang\",\"workload\":\"w2\",\"n\":~b,\"window\":~b,\"rate\":~b}~n",
              [N, Window, round(N / Seconds)]).

%% Under load, least-loaded over 4 equal consumers is a rotation.
pump(_Cs, N, _Window, _Sent, N, _InFlight) -> ok;
pump(Cs, N, Window, Sent, Done, InFlight) when Sent < N, InFlight < Window ->
    K = tuple_size(Cs),
    First = element(Sent rem K + 1, Cs),
    Rest = [element(I, Cs) || I <- lists:seq(1, K), element(I, Cs) =/= First],
    dispatch(self(), [First | Rest]),
    pump(Cs, N, Window, Sent + 1, Done, InFlight + 1);
pump(Cs, N, Window, Sent, Done, InFlight) ->
    receive {delivered, _, _, _} -> pump(Cs, N, Window, Sent, Done + 1, InFlight - 1) end.

w3(N) ->
    Survivor = spawn(?MODULE, consumer, [ack]),
    Samples = [begin
                   Victim = spawn(?MODULE, consumer, [crash]),
                   T0 = erlang:monotonic_time(nanosecond),
                   Pid = dispatch(self(), [Victim, Survivor]),
                   receive {delivered, Pid, Survivor, _} -> ok end,
                   erlang:monotonic_time(nanosecond) - T0
               end || _ <- lists:seq(1, N)],
    Sorted = lists:sort(Samples),
    io:format("{\"system\":\"erlang\",\"workload\":\"w3\",\"n\":~b,\"p50_ns\":~b,\"p99_ns\":~b,\"p999_ns\":~b}~n",
              [N, percentile(Sorted, 0.5), percentile(Sorted, 0.99), percentile(Sorted, 0.999)]).
