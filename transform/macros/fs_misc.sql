{#- Small portable helpers (the dbt package hub is unreachable here, so no dbt_utils). -#}

{#- Milliseconds between two timestamps, as an integer. -#}
{% macro fs_ms_between(start, end) -%}{{ dbt.datediff(start, end, 'millisecond') }}{%- endmacro %}

{#- FullStory's replay link for a session: https://<host>/ui/<org>/session/<UserId>:<SessionId>. -#}
{% macro fs_replay_url(user_id, session_id) -%}
{%- set org = var('fullstory_org_id', none) or env_var('FULLSTORY_ORG_ID', 'ORG_ID') -%}
{{ dbt.concat(["'https://" ~ var('fullstory_replay_host') ~ "/ui/" ~ org ~ "/session/'",
               "cast(" ~ user_id ~ " as " ~ dbt.type_string() ~ ")", "':'",
               "cast(" ~ session_id ~ " as " ~ dbt.type_string() ~ ")"]) }}
{%- endmacro %}

{#- 1 when the condition holds, else 0 (summed into counts). -#}
{% macro fs_flag(condition) -%}case when {{ condition }} then 1 else 0 end{%- endmacro %}

{#- A sum typed as a 64-bit integer (DuckDB would give HUGEINT, PostgreSQL numeric). -#}
{% macro fs_sum(expr) -%}cast(sum({{ expr }}) as {{ dbt.type_bigint() }}){%- endmacro %}

{#- Where an event-grained model's row happened: its ids, time, session, page and user. -#}
{% macro fs_event_context() -%}
    event_id,
    event_at,
    event_date,
    session_key,
    page_key,
    indv_id,
    page_url
{%- endmacro %}
