%% Erlang/OTP peer: the same dispatch pattern written directly in Erlang.
%% Per message a conversation process links to the consumer chosen by the
%% same rule (least loaded = the first idle one when dispatching one at a
%% time; round robin over the live set under load), forwards, and waits for
%% the ack or the EXIT; on EXIT it re-routes excluding the crashed consumer.
%% Usage: erl -noshell -pa DIR -s dispatch_bench main w1|w2|w3 N [WINDOW]
%%        erl -noshell -pa DIR -s dispatch_bench main w9 MS [WORK_US [PREFETCH]]
%% W9 is producers outrunning consumers 2:1 with RabbitMQ-style prefetch
%% (see w9/3).
-module(dispatch_bench).
-export([main/1, consumer/1]).

main([W, NStr | Rest]) ->
    N = list_to_integer(atom_to_list(NStr)),
    case W of
        w1 -> w1(N);
        w2 -> w2(N, case Rest of [Win] -> list_to_integer(atom_to_list(Win)); _ -> 1024 end);
        w3 -> w3(N);
        w9 ->
            Int = fun(A) -> list_to_integer(atom_to_list(A)) end,
            case Rest of
                [] -> w9(N, 40, 1);
                [Work] -> w9(N, Int(Work), 1);
                [Work, Prefetch | _] -> w9(N, Int(Work), Int(Prefetch))
            end
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

%% W9: producers outrun consumers 2:1, RabbitMQ-style prefetch. One queue
%% process; each of 4 consumers holds at most Prefetch unacknowledged
%% messages; an ack frees a slot and the queue hands that consumer the oldest
%% waiting message. A consumer busy-waits WorkUs per message. What the
%% consumers take is measured first (queue kept full), then 2 producers offer
%% twice that, paced by the monotonic clock, for Ms milliseconds, and the
%% queue drains. Depth is sampled every 10 ms; waiting time is recorded for
%% every message that waited in the queue (as liminal records it).
now_ns() -> erlang:monotonic_time(nanosecond).

w9(Ms, WorkUs, Prefetch) ->
    WorkNs = WorkUs * 1000,
    Capacity = w9_capacity(WorkNs, Prefetch),
    Offered = 2 * Capacity,
    Q = w9_queue(WorkNs, Prefetch),
    DurationNs = Ms * 1000000,
    Self = self(),
    Start = now_ns(),
    Q ! sample,
    [spawn_link(fun() -> Self ! {produced, w9_producer(Q, Start, DurationNs, Offered / 2, 0)} end)
     || _ <- [1, 2]],
    Total = lists:sum([receive {produced, N} -> N end || _ <- [1, 2]]),
    ProducedAt = now_ns(),
    AckedAtEnd = w9_acked(Q),
    Q ! {drain, Total, self()},
    {Acked, Waits, DepthMax, DepthSum, DepthN} = receive {drained, A, W, DMax, DSum, DN} -> {A, W, DMax, DSum, DN} end,
    DrainedAt = now_ns(),
    Q ! stop,
    Sorted = lists:sort(Waits),
    Pct = fun(_Q) when Sorted =:= [] -> 0; (Qt) -> percentile(Sorted, Qt) end,
    ProduceS = (ProducedAt - Start) / 1.0e9,
    TotalS = (DrainedAt - Start) / 1.0e9,
    io:format("{\"system\":\"erlang\",\"workload\":\"w9\",\"consumers\":4,\"work_us\":~b,\"prefetch\":~b,"
              "\"producers\":2,\"duration_ms\":~b,\"capacity_rate\":~b,\"offered_rate\":~b,\"rate\":~b,"
              "\"rate_overloaded\":~b,\"dispatched\":~b,\"delivered\":~b,\"failed\":~b,\"rejected\":0,"
              "\"drain_ms\":~b,\"depth_max\":~b,\"depth_mean\":~b,\"waiting_p50_ns\":~b,"
              "\"waiting_p99_ns\":~b,\"waiting_max_ns\":~b}~n",
              [WorkUs, Prefetch, Ms, round(Capacity), round(Total / ProduceS), round(Acked / TotalS),
               round(AckedAtEnd / ProduceS), Total, Acked, Total - Acked, round((DrainedAt - ProducedAt) / 1.0e6),
               DepthMax, round(DepthSum / max(1, DepthN)), Pct(0.5), Pct(0.99),
               case Sorted of [] -> 0; _ -> lists:last(Sorted) end]).

%% Consumers' capacity: keep the queue full, count acks over one second.
w9_capacity(WorkNs, Prefetch) ->
    Q = w9_queue(WorkNs, Prefetch),
    [Q ! publish || _ <- lists:seq(1, 200000)],
    timer:sleep(200),
    A0 = w9_acked(Q), T0 = now_ns(),
    timer:sleep(1000),
    A1 = w9_acked(Q), T1 = now_ns(),
    Q ! stop,
    (A1 - A0) / ((T1 - T0) / 1.0e9).

w9_acked(Q) ->
    Q ! {acked, self()},
    receive {acked, A} -> A end.

%% One producer: as many publishes as its rate says by now, then a 1 ms tick.
w9_producer(Q, Start, DurationNs, Rate, Sent) ->
    Elapsed = now_ns() - Start,
    case Elapsed >= DurationNs of
        true -> Sent;
        false ->
            Due = max(Sent, trunc(Elapsed / 1.0e9 * Rate)),
            [Q ! publish || _ <- lists:seq(1, Due - Sent)],
            receive after 1 -> ok end,
            w9_producer(Q, Start, DurationNs, Rate, Due)
    end.

w9_consumer(Q, WorkNs) ->
    receive
        deliver ->
            Until = now_ns() + WorkNs,
            spin(Until),
            Q ! {ack, self()},
            w9_consumer(Q, WorkNs);
        stop -> ok
    end.

spin(Until) ->
    case now_ns() < Until of
        true -> spin(Until);
        false -> ok
    end.

w9_queue(WorkNs, Prefetch) ->
    spawn(fun() ->
                  Q = self(),
                  Cs = [spawn(fun() -> w9_consumer(Q, WorkNs) end) || _ <- lists:seq(1, 4)],
                  Free = lists:append([Cs || _ <- lists:seq(1, Prefetch)]),
                  w9_queue_loop(#{q => queue:new(), len => 0, free => Free, consumers => Cs, acked => 0,
                                  waits => [], dmax => 0, dsum => 0, dn => 0, target => infinity,
                                  caller => none})
          end).

w9_queue_loop(S = #{q := Queue, len := Len, free := Free, acked := Acked}) ->
    receive
        publish ->
            case Free of
                [C | Rest] -> C ! deliver, w9_queue_loop(S#{free := Rest});
                [] -> w9_queue_loop(S#{q := queue:in(now_ns(), Queue), len := Len + 1})
            end;
        {ack, C} ->
            S2 = case queue:out(Queue) of
                     {{value, T}, Queue2} ->
                         C ! deliver,
                         S#{q := Queue2, len := Len - 1, waits := [now_ns() - T | maps:get(waits, S)]};
                     {empty, _} ->
                         S#{free := [C | Free]}
                 end,
            w9_drained(S2#{acked := Acked + 1});
        sample ->
            #{dmax := DMax, dsum := DSum, dn := DN} = S,
            erlang:send_after(10, self(), sample),
            w9_queue_loop(S#{dmax := max(DMax, Len), dsum := DSum + Len, dn := DN + 1});
        {acked, From} ->
            From ! {acked, Acked},
            w9_queue_loop(S);
        {drain, Target, From} ->
            w9_drained(S#{target := Target, caller := From});
        stop ->
            [C ! stop || C <- maps:get(consumers, S)],
            ok
    end.

w9_drained(S = #{acked := Acked, target := Target, caller := From}) when is_integer(Target), Acked >= Target ->
    From ! {drained, Acked, maps:get(waits, S), maps:get(dmax, S), maps:get(dsum, S), maps:get(dn, S)},
    w9_queue_loop(S#{target := infinity});
w9_drained(S) ->
    w9_queue_loop(S).
